"""PyTorch CPU peer for bench/ml-core.bench.ts: MLP 784-256-10 on MNIST, batch 128, Adam (lr 1e-3),
the same architecture, initial-weight ranges and data scaling (pixels / 255) as Bulwark's run.

usage: ml-core-torch.py IDX_DIR EPOCHS THREADS SEED [SCHEDULE]
SCHEDULE is constant (default) or cosine (annealed to 0 per step over all epochs, as Bulwark's).
Prints one JSON document: torch version, threads, seconds of each epoch (training only), test accuracy.
"""
import json
import os
import sys
import time

import numpy as np
import torch


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    root, epochs, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    schedule = sys.argv[5] if len(sys.argv) > 5 else "constant"
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    xtr = torch.from_numpy(idx(os.path.join(root, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255)
    ytr = torch.from_numpy(idx(os.path.join(root, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(idx(os.path.join(root, "t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255)
    yte = torch.from_numpy(idx(os.path.join(root, "t10k-labels-idx1-ubyte")).astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = xtr.shape[0]
    steps = epochs * ((n + 127) // 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if schedule == "cosine" else None
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, 128):
            idxs = perm[s: s + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idxs]), ytr[idxs])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "epoch_seconds": times, "test_accuracy": acc, "schedule": schedule}))


main()
