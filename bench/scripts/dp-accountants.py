"""Accountant parity driver for bench/dp.bench.ts and the test grid in test/privacy/accountants.test.ts.

Reads a JSON list of {"sigma", "q", "steps", "delta"} from its first argument (or stdin) and prints, for each, the epsilons of
Opacus 1.4.0 (RDP with its default orders and Balle et al. 2020 conversion; PRV), of Google's
dp_accounting (RDP with its default orders; PLD with value_discretization_interval 1e-4), the classic
RDP conversion (Mironov 2017, Prop. 3) on Opacus's orders, and the raw RDP values per order.

Peers come from the checkouts named by BULWARK_PEERS (default bench/peers): opacus (tag v1.4.0) plus
opt_einsum (v3.4.0), and google-dp/python/dp_accounting (HEAD). Run with /usr/bin/python3.
"""
import json
import math
import os
import sys
import time
import warnings

peers = os.environ.get("BULWARK_PEERS", os.path.join(os.path.dirname(__file__), "..", "peers"))
for p in ("opacus", "opt_einsum", os.path.join("google-dp", "python", "dp_accounting")):
    sys.path.insert(0, os.path.join(peers, p))

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import opacus  # noqa: E402
from opacus.accountants import RDPAccountant, PRVAccountant  # noqa: E402
from opacus.accountants.analysis import rdp as opacus_rdp  # noqa: E402
import dp_accounting  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant as dpa_pld  # noqa: E402


def main():
    grid = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    want_prv = os.environ.get("DP_PRV", "1") == "1"
    out = []
    for g in grid:
        sigma, q, steps, delta = g["sigma"], g["q"], int(g["steps"]), g["delta"]
        r = {"sigma": sigma, "q": q, "steps": steps, "delta": delta}
        orders = RDPAccountant.DEFAULT_ALPHAS
        rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
        t0 = time.perf_counter()
        acc = RDPAccountant()
        acc.history = [(sigma, q, steps)]
        r["opacus_rdp_eps"], r["opacus_rdp_order"] = acc.get_privacy_spent(delta=delta)
        r["opacus_rdp_seconds"] = time.perf_counter() - t0
        r["opacus_orders"] = [float(a) for a in orders]
        r["opacus_rdp"] = [float(v) for v in rdp]
        classic = [v + math.log(1 / delta) / (a - 1) for a, v in zip(orders, rdp)]
        r["classic_eps"] = float(min(classic))
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        t0 = time.perf_counter()
        ra = dpa_rdp.RdpAccountant()
        ra.compose(event)
        r["dpa_rdp_eps"] = float(ra.get_epsilon(delta))
        r["dpa_rdp_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pa = dpa_pld.PLDAccountant()
        pa.compose(event)
        r["dpa_pld_eps"] = float(pa.get_epsilon(delta))
        r["dpa_pld_seconds"] = time.perf_counter() - t0
        if want_prv:
            t0 = time.perf_counter()
            pr = PRVAccountant()
            pr.history = [(sigma, q, steps)]
            try:
                r["opacus_prv_eps"] = float(pr.get_epsilon(delta=delta))
            except Exception as e:  # PRV refuses some extreme grids
                r["opacus_prv_error"] = str(e)
            r["opacus_prv_seconds"] = time.perf_counter() - t0
        out.append(r)
    json.dump({"opacus": opacus.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
