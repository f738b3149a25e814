"""scikit-learn peer for bench/ml-core.bench.ts: LogisticRegression (lbfgs, C=1, max_iter=1000) on the
UCI Adult design matrix Bulwark built (one-hot categoricals + raw numerics, float32 little-endian), with
StandardScaler fitted on the training rows, i.e. the same preprocessing as Bulwark's model.

usage: ml-core-sklearn-lr.py DIR COLS REPEATS
DIR holds xtr.f32, ytr.i32, xte.f32, yte.i32. Prints one JSON document: version, fit seconds of each
repeat (scaler + fit), test accuracy, iterations.
"""
import json
import os
import sys
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

d, cols, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
xtr = np.fromfile(os.path.join(d, "xtr.f32"), dtype="<f4").reshape(-1, cols).astype(np.float64)
ytr = np.fromfile(os.path.join(d, "ytr.i32"), dtype="<i4")
xte = np.fromfile(os.path.join(d, "xte.f32"), dtype="<f4").reshape(-1, cols).astype(np.float64)
yte = np.fromfile(os.path.join(d, "yte.i32"), dtype="<i4")
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(solver="lbfgs", C=1.0, max_iter=1000).fit(scaler.transform(xtr), ytr)
    times.append(time.perf_counter() - t0)
acc = float((clf.predict(scaler.transform(xte)) == yte).mean())
print(json.dumps({
    "sklearn": sklearn.__version__, "fit_seconds": times, "test_accuracy": acc, "iterations": int(clf.n_iter_[0]),
    "blas": [f"{i.get('internal_api')} {i.get('version')} threads={i.get('num_threads')}" for i in threadpool_info()],
}))
