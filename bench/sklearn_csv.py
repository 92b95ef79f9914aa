"""Peer baseline on numeric CSV tables (as bench/datasets.ts writes `digits`): scikit-learn's MLPClassifier
with its defaults (one hidden layer of 100, adam, at most 200 epochs; no scaling, as a user would call it;
only random_state is fixed, to --seed, so that a rerun repeats), and LogisticRegressionCV (5-fold over 10
values of C, standardised, as /work/shared/peers/sklearn_probe_cv.py does).

Usage: /usr/bin/python3 bench/sklearn_csv.py TRAIN.csv TEST.csv [--seed 0]
A CSV has a header row, a `label` column and numeric feature columns, in any order. Prints one line per
model, in sklearn_probe_cv.py's format:
  sklearn NAME: accuracy 0.9722, fit 1.23 s, train 1258, dim 64
"""
import csv, sys, time, warnings
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    head, body = rows[0], [r for r in rows[1:] if r]
    li = head.index('label')
    x = np.array([[float(v) for j, v in enumerate(r) if j != li] for r in body])
    y = np.array([r[li] for r in body])
    return x, y


args = [a for a in sys.argv[1:] if not a.startswith('--')]
seed = int(sys.argv[sys.argv.index('--seed') + 1]) if '--seed' in sys.argv else 0
if len(args) < 2:
    sys.exit(__doc__)
Xtr, ytr = load(args[0])
Xte, yte = load(args[1])
for name, model in [(f'MLPClassifier(random_state={seed})', MLPClassifier(random_state=seed)),
                    ('LogisticRegressionCV(5-fold)', make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, max_iter=5000)))]:
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always', ConvergenceWarning)
        model.fit(Xtr, ytr)
    s = time.perf_counter() - t
    note = ' (not converged)' if any(issubclass(x.category, ConvergenceWarning) for x in w) else ''
    print(f"sklearn {name}: accuracy {model.score(Xte, yte):.4f}, fit {s:.2f} s, train {len(ytr)}, dim {Xtr.shape[1]}{note}")
