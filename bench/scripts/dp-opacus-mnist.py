"""Opacus 1.4.0 DP-SGD on MNIST for bench/dp.bench.ts.

Usage: dp-opacus-mnist.py MNIST_DIR EPOCHS SIGMA CLIP EXPECTED_BATCH LR THREADS [TRAIN_ROWS]

The same MLP as Bulwark's side (784-256-10, ReLU), pixels / 255, Poisson sampling at rate
EXPECTED_BATCH / rows (Opacus's DPDataLoader), per-example clipping at CLIP, Gaussian noise SIGMA * CLIP,
plain SGD (no momentum) at LR, the loss averaged over the expected batch size. Prints one JSON document:
seconds per epoch, test accuracy after each epoch, and epsilon at delta 1e-5 from Opacus's RDP accountant
(Balle et al. 2020 conversion) and PRV accountant.

Opacus comes from BULWARK_PEERS/opacus (tag v1.4.0) plus BULWARK_PEERS/opt_einsum (v3.4.0); run with
/usr/bin/python3 (Debian's torch 1.13). secure_mode is off: it needs torchcsprng, which is not installed.
"""
import json
import os
import sys
import time
import warnings

peers = os.environ.get("BULWARK_PEERS", os.path.join(os.path.dirname(__file__), "..", "peers"))
for p in ("opacus", "opt_einsum"):
    sys.path.insert(0, os.path.join(peers, p))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import opacus  # noqa: E402
from opacus import PrivacyEngine  # noqa: E402
from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    mnist, epochs, sigma, clip, batch, lr, threads = sys.argv[1:8]
    epochs, sigma, clip, batch, lr, threads = int(epochs), float(sigma), float(clip), int(batch), float(lr), int(threads)
    rows = int(sys.argv[8]) if len(sys.argv) > 8 else 60000
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    xtr = torch.tensor(read_idx(os.path.join(mnist, "train-images-idx3-ubyte"))[:rows].reshape(-1, 784), dtype=torch.float32) / 255
    ytr = torch.tensor(read_idx(os.path.join(mnist, "train-labels-idx1-ubyte"))[:rows], dtype=torch.long)
    xte = torch.tensor(read_idx(os.path.join(mnist, "t10k-images-idx3-ubyte")).reshape(-1, 784), dtype=torch.float32) / 255
    yte = torch.tensor(read_idx(os.path.join(mnist, "t10k-labels-idx1-ubyte")), dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr, ytr), batch_size=batch, shuffle=True)
    engine = PrivacyEngine(accountant="rdp")
    model, opt, loader = engine.make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma, max_grad_norm=clip, poisson_sampling=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    epoch_seconds, accs = [], []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            if len(xb) == 0:
                opt.step()
                continue
            loss_fn(model(xb), yb).backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            accs.append(float((model(xte).argmax(1) == yte).float().mean()))
    q = batch / rows
    steps = len(engine.accountant.history) and sum(h[2] for h in engine.accountant.history)
    prv = PRVAccountant()
    prv.history = list(engine.accountant.history)
    out = {
        "opacus": opacus.__version__,
        "torch": torch.__version__,
        "threads": threads,
        "epoch_seconds": epoch_seconds,
        "test_accuracy": accs,
        "steps": steps,
        "sample_rate": q,
        "epsilon_rdp": float(engine.accountant.get_epsilon(delta=1e-5)),
        "epsilon_prv": float(prv.get_epsilon(delta=1e-5)),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
