"""ART 1.16.0 peer for bench/poisoning.bench.ts: SpectralSignatureDefense and ActivationDefence on the
SAME hidden representations Bulwark's defences see (the last hidden layer of the poisoned model,
computed by Bulwark and written to disk), so the comparison is of the defence algorithms alone.

ART takes the activations of a classifier's last layer; the classifier here is a PyTorch
nn.Sequential(nn.ReLU()) over the representations (identity on them, as they are ReLU outputs), so
ART's get_activations returns exactly the representations.

usage: poisoning-art.py CONFIG.json   (ART's folder on PYTHONPATH)
CONFIG: {"cases": [{"name", "reps", "labels", "rows", "dim", "classes", "eps"}]}
Prints one JSON document: per case, the flagged row indices of each defence and its seconds.
"""
import json
import warnings
import sys
import time

import numpy as np
import torch

import art
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
from art.estimators.classification import PyTorchClassifier
import art.defences.detector.poison.clustering_analyzer as clustering_analyzer


class _RaggedNumpy:
    """ART 1.16's cluster analysis builds np.asarray of per-class lists of different lengths, which
    NumPy >= 1.24 refuses; object arrays are what older NumPy made of them (no other change)."""

    def __getattr__(self, name):
        return getattr(np, name)

    def asarray(self, a, *args, **kwargs):
        try:
            return np.asarray(a, *args, **kwargs)
        except ValueError:
            return np.asarray(a, dtype=object)


clustering_analyzer.np = _RaggedNumpy()


def main():
    warnings.simplefilter("ignore")
    cfg = json.load(open(sys.argv[1]))
    torch.manual_seed(0)
    np.random.seed(0)
    out = {"art": art.__version__, "torch": torch.__version__, "cases": []}
    for c in cfg["cases"]:
        rows, dim, k = c["rows"], c["dim"], c["classes"]
        x = np.fromfile(c["reps"], dtype="<f4").reshape(rows, dim)
        y = np.fromfile(c["labels"], dtype="<i4")
        onehot = np.eye(k, dtype=np.float32)[y]
        clf = PyTorchClassifier(
            model=torch.nn.Sequential(torch.nn.ReLU()),
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=(dim,),
            nb_classes=k,
            device_type="cpu",
        )
        t0 = time.perf_counter()
        ss = SpectralSignatureDefense(clf, x, onehot, expected_pp_poison=c["eps"], batch_size=1024, eps_multiplier=1.5)
        _, ss_clean = ss.detect_poison()
        t1 = time.perf_counter()
        ac = ActivationDefence(clf, x, onehot)
        _, ac_clean = ac.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="relative-size")
        t2 = time.perf_counter()
        out["cases"].append(
            {
                "name": c["name"],
                "spectral": [int(i) for i in np.where(np.asarray(ss_clean) == 0)[0]],
                "activations": [int(i) for i in np.where(np.asarray(ac_clean) == 0)[0]],
                "spectralSeconds": t1 - t0,
                "activationsSeconds": t2 - t1,
            }
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
