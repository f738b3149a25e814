"""ART 1.16.0 peer for bench/robust.bench.ts: PyTorch MLP 784-H-10 (ReLU), the same architecture, data
subsets, batch size, optimiser and attack settings as Bulwark's run.

usage: robust-art.py CONFIG.json   (written by the benchmark; ART's folder on PYTHONPATH)

For each dataset, from the initial weights Bulwark wrote (so both sides start from the same point): trains
a normal model (Adam, lr 1e-3, batch 128) and, for each eps, a PGD-trained model
(Adam, lr 1e-3, x0.1 from epoch `dropEpoch` on as Croce et al.) with ART's AdversarialTrainer (ratio 0.5 of each batch adversarial, ProjectedGradientDescent L-inf with
num_random_init=1, 40 iterations, eps_step = 2.5 eps / 40: Madry et al.'s recipe as Croce et al. ran it);
times each adversarial-training epoch; evaluates clean accuracy and robust accuracy under ART's PGD
(100 iterations, eps_step eps / 10, num_random_init = restarts, true labels) on its own models AND on
Bulwark's (weights read from the files Bulwark wrote); times PGD-100 on 1,000 inputs; writes its own
models' weights in Bulwark's layout (W1 784xH row-major, b1, W2 Hx10, b2) for Bulwark to attack.
Prints one JSON document.

With "accuracyOnly": true in the config (bench/robust-seeds.bench.ts), only the PGD-trained models: no
normal model, no timing (the seeds bench makes no timing claims), so the JSON has just "models".
"""
import json
import sys
import time

import numpy as np
import torch

import art
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import PyTorchClassifier


def load(path, dtype, rows, cols=None):
    a = np.fromfile(path, dtype=dtype)
    return a.reshape(rows, cols) if cols else a


def make_model(hidden):
    return torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))


def classifier(model):
    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=(784,),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def set_weights(model, path, hidden):
    p = np.fromfile(path, dtype="<f4")
    n1 = 784 * hidden
    w1 = p[:n1].reshape(784, hidden)
    b1 = p[n1:n1 + hidden]
    o = n1 + hidden
    w2 = p[o:o + hidden * 10].reshape(hidden, 10)
    b2 = p[o + hidden * 10:o + hidden * 10 + 10]
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
        model[0].bias.copy_(torch.from_numpy(b1.copy()))
        model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
        model[2].bias.copy_(torch.from_numpy(b2.copy()))


def save_weights(model, path):
    with torch.no_grad():
        parts = [
            model[0].weight.numpy().T.reshape(-1),
            model[0].bias.numpy(),
            model[2].weight.numpy().T.reshape(-1),
            model[2].bias.numpy(),
        ]
    np.concatenate(parts).astype("<f4").tofile(path)


def accuracy(clf, x, y):
    return float((clf.predict(x, batch_size=500).argmax(1) == y).mean())


def robust_accuracy(clf, x, y, eps, cfg, restarts):
    attack = ProjectedGradientDescent(
        clf, norm=np.inf, eps=eps, eps_step=eps / 10, max_iter=cfg["evalSteps"],
        num_random_init=restarts, batch_size=cfg["batch"], verbose=False,
    )
    adv = attack.generate(x, y=y)
    # sanity: ART's projection keeps the eps-ball and [0, 1]
    assert np.abs(adv - x).max() <= eps + 1e-5 and adv.min() >= 0 and adv.max() <= 1
    return accuracy(clf, adv, y)


def main():
    cfg = json.load(open(sys.argv[1]))
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    hidden = cfg["hidden"]
    out = {"art": art.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(), "datasets": {}}
    for ds in cfg["datasets"]:
        name = ds["name"]
        xtr = load(ds["trainX"], "<f4", ds["trainRows"], 784)
        ytr = load(ds["trainY"], "<i4", ds["trainRows"]).astype(np.int64)
        xte = load(ds["testX"], "<f4", ds["testRows"], 784)
        yte = load(ds["testY"], "<i4", ds["testRows"]).astype(np.int64)
        res = {"models": {}}
        accuracy_only = cfg.get("accuracyOnly", False)
        trained = {}
        if not accuracy_only:
            # Normal training.
            normal = classifier(make_model(hidden))
            set_weights(normal.model, ds["initWeights"], hidden)
            t0 = time.perf_counter()
            normal.fit(xtr, ytr, batch_size=128, nb_epochs=ds["epochsNormal"], verbose=False)
            res["normalEpochSeconds"] = (time.perf_counter() - t0) / ds["epochsNormal"]
            save_weights(normal.model, ds["artWeights"]["normal"])
            trained["normal"] = normal
        # PGD adversarial training, one model per eps.
        for eps in ds["atEps"]:
            key = f"pgd-{eps}"
            clf = classifier(make_model(hidden))
            set_weights(clf.model, ds["initWeights"], hidden)
            pgd_train = ProjectedGradientDescent(
                clf, norm=np.inf, eps=eps, eps_step=2.5 * eps / cfg["trainSteps"], max_iter=cfg["trainSteps"],
                num_random_init=1, batch_size=128, verbose=False,
            )
            trainer = AdversarialTrainer(clf, attacks=pgd_train, ratio=cfg["ratio"])
            epochs = ds["epochsAT"]
            drop = ds["dropEpoch"]
            t0 = time.perf_counter()
            # Croce et al.'s schedule, as Bulwark's side: lr x0.1 from epoch `drop` (1-based) on.
            if drop > 1:
                trainer.fit(xtr, ytr, nb_epochs=drop - 1, batch_size=128)
            for group in clf.optimizer.param_groups:
                group["lr"] = 1e-4
            trainer.fit(xtr, ytr, nb_epochs=epochs - drop + 1, batch_size=128)
            if not accuracy_only:
                res.setdefault("atEpochSeconds", {})[key] = (time.perf_counter() - t0) / epochs
            save_weights(clf.model, ds["artWeights"][key])
            trained[key] = clf
        # Evaluation: ART's PGD on ART's models and on Bulwark's.
        n = ds["evalRows"]
        x, y = xte[:n], yte[:n]
        for key, clf in trained.items():
            m = {"clean": accuracy(clf, x, y), "pgd": {}}
            for eps in ds["evalEps"][key]:
                m["pgd"][str(eps)] = robust_accuracy(clf, x, y, eps, cfg, cfg["restarts"])
            res["models"][f"art/{key}"] = m
        for key, path in ds["oursWeights"].items():
            clf = classifier(make_model(hidden))
            set_weights(clf.model, path, hidden)
            m = {"clean": accuracy(clf, x, y), "pgd": {}}
            for eps in ds["evalEps"][key]:
                m["pgd"][str(eps)] = robust_accuracy(clf, x, y, eps, cfg, cfg["restarts"])
            res["models"][f"bulwark/{key}"] = m
        if accuracy_only:
            out["datasets"][name] = res
            continue
        # Time per 1,000 PGD attacks (100 iterations, one start) on the normal model.
        rows = min(1000, ds["testRows"])
        attack = ProjectedGradientDescent(
            normal, norm=np.inf, eps=ds["atEps"][0], eps_step=ds["atEps"][0] / 10, max_iter=cfg["evalSteps"],
            num_random_init=1, batch_size=cfg["batch"], verbose=False,
        )
        t0 = time.perf_counter()
        attack.generate(xte[:rows], y=yte[:rows])
        res["pgdSecondsPer1000"] = (time.perf_counter() - t0) * 1000 / rows
        out["datasets"][name] = res
    print(json.dumps(out))


main()
