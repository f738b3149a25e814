"""diffprivlib 0.6.5 LogisticRegression on UCI Adult for bench/dp.bench.ts.

Usage: dp-diffprivlib-lr.py ADULT_DIR SEEDS EPS1,EPS2,... [numeric|onehot]

`numeric`: the five numeric features (age, education-num, capital-gain, capital-loss, hours-per-week),
scaled to [0, 1] by the public bounds below (clipped), data_norm = sqrt(5), as in diffprivlib's notebook
set-up. `onehot`: every feature: the six numeric ones scaled by public bounds, the eight categorical ones
one-hot (categories from adult.names, public), data_norm = sqrt(14) (each row has at most 14 non-zeros in
[0, 1]). Prints one JSON document: accuracy and fit seconds per epsilon and seed, and the non-private
scikit-learn baseline on the same matrix.

diffprivlib comes from the checkout at BULWARK_PEERS/diffprivlib (tag 0.6.5), run with /usr/bin/python3.
"""
import json
import os
import sys
import time
import warnings

peers = os.environ.get("BULWARK_PEERS", os.path.join(os.path.dirname(__file__), "..", "peers"))
sys.path.insert(0, os.path.join(peers, "diffprivlib"))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLR  # noqa: E402
import diffprivlib  # noqa: E402
from diffprivlib.models import LogisticRegression  # noqa: E402

# Public bounds (domain knowledge, never the data): the same in bench/dp.bench.ts.
NUMERIC = {
    "age": (0, 100),
    "fnlwgt": (0, 1_500_000),
    "education-num": (0, 16),
    "capital-gain": (0, 100_000),
    "capital-loss": (0, 5_000),
    "hours-per-week": (0, 100),
}
FIVE = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
CATEGORIES = json.loads(os.environ["ADULT_CATEGORIES"]) if "ADULT_CATEGORIES" in os.environ else None


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("|"):
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 15:
                continue
            rows.append(parts)
    return rows


def matrix(rows, mode):
    cols = []
    for name in (FIVE if mode == "numeric" else [c for c in COLUMNS[:-1] if c in NUMERIC]):
        lo, hi = NUMERIC[name]
        j = COLUMNS.index(name)
        v = np.array([float(r[j]) for r in rows])
        cols.append(np.clip((v - lo) / (hi - lo), 0, 1))
    if mode == "onehot":
        for name, cats in CATEGORIES.items():
            j = COLUMNS.index(name)
            for c in cats:
                cols.append(np.array([1.0 if r[j] == c else 0.0 for r in rows]))
    x = np.stack(cols, axis=1)
    y = np.array([1 if r[14].rstrip(".") == ">50K" else 0 for r in rows])
    return x, y


def main():
    adult_dir, seeds, eps_list = sys.argv[1], int(sys.argv[2]), [float(e) for e in sys.argv[3].split(",")]
    mode = sys.argv[4] if len(sys.argv) > 4 else "numeric"
    xtr, ytr = matrix(read(os.path.join(adult_dir, "adult.data")), mode)
    xte, yte = matrix(read(os.path.join(adult_dir, "adult.test")), mode)
    data_norm = float(np.sqrt(5 if mode == "numeric" else 14))
    out = {"diffprivlib": diffprivlib.__version__, "sklearn": sklearn.__version__, "features": xtr.shape[1],
           "data_norm": data_norm, "results": []}
    base = SkLR(max_iter=1000).fit(xtr, ytr)
    out["nonprivate_accuracy"] = float(base.score(xte, yte))
    for eps in eps_list:
        accs, secs = [], []
        for s in range(seeds):
            t0 = time.perf_counter()
            clf = LogisticRegression(epsilon=eps, data_norm=data_norm, random_state=s).fit(xtr, ytr)
            secs.append(time.perf_counter() - t0)
            accs.append(float(clf.score(xte, yte)))
        out["results"].append({"epsilon": eps, "accuracy": accs, "fit_seconds": secs})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
