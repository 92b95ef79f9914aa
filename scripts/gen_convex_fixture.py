"""Reference solutions for graft's convex probes (src/probe/convex.test.ts), from scikit-learn.

Writes fixtures/convex/reference.json: rows of sklearn's digits (real data), standardised the way graft
does (population std, constant columns left at std 1), and for each case the coefficients and intercepts
scikit-learn reaches with a tight tolerance, plus the objective value in graft's scaling.
Run: /usr/bin/python3 scripts/gen_convex_fixture.py (Debian python3-sklearn).
"""
import json
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.svm import LinearSVC

X, y = load_digits(return_X_y=True)
rs = np.random.RandomState(0)
cases = []


def standardise(x):
    m = x.mean(0)
    v = np.maximum(0, (x * x).mean(0) - m * m)
    s = np.where(v > 1e-12, np.sqrt(v), 1.0)
    return (x - m) / s


for name, n, classes in [('wide', 40, [0, 1, 2, 3]), ('tall', 200, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]:
    idx = np.concatenate([rs.permutation(np.where(y == c)[0])[: n // len(classes)] for c in classes])
    idx.sort()
    x = X[idx].astype(np.float32)
    yy = np.searchsorted(classes, y[idx])
    xs = standardise(x.astype(np.float64))
    k = len(classes)
    for C in [0.01, 1.0]:
        lr = LogisticRegression(C=C, tol=1e-10, max_iter=100000).fit(xs, yy)
        W = lr.coef_.T
        b = lr.intercept_
        z = xs @ W + b
        z = z - z.max(1, keepdims=True)
        ll = -(z[np.arange(len(yy)), yy] - np.log(np.exp(z).sum(1))).mean()
        obj = ll + (W * W).sum() / (2 * C * len(yy))
        cases.append({'name': f'{name}-logistic-C{C}', 'loss': 'logistic', 'C': C, 'rows': [int(i) for i in idx], 'k': k,
                      'x': x.ravel().tolist(), 'y': yy.tolist(), 'd': x.shape[1], 'weight': W.ravel().tolist(), 'bias': b.tolist(), 'objective': obj})
    C = 0.1
    rc = RidgeClassifier(alpha=1 / C, solver='cholesky').fit(xs, yy)
    cases.append({'name': f'{name}-ridge-C{C}', 'loss': 'ridge', 'C': C, 'k': k, 'x': x.ravel().tolist(), 'y': yy.tolist(), 'd': x.shape[1],
                  'weight': rc.coef_.T.ravel().tolist() if k > 2 else None, 'bias': rc.intercept_.tolist()})
    sv = LinearSVC(C=C, loss='squared_hinge', tol=1e-10, max_iter=1000000, intercept_scaling=1e4).fit(xs, yy)
    cases.append({'name': f'{name}-squared-hinge-C{C}', 'loss': 'squared-hinge', 'C': C, 'k': k, 'x': x.ravel().tolist(), 'y': yy.tolist(), 'd': x.shape[1],
                  'weight': sv.coef_.T.ravel().tolist(), 'bias': sv.intercept_.tolist()})
for c in cases:
    c.pop('rows', None)
json.dump({'source': 'sklearn digits; scikit-learn ' + __import__('sklearn').__version__, 'cases': cases}, open('fixtures/convex/reference.json', 'w'))
print(len(cases), 'cases')
