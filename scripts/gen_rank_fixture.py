"""Reference values for src/rank/scores.test.ts: fixtures/rank/reference.json.

Each score is written here from its paper in numpy/scipy, as literally as the paper states it (no
eigenvalue shortcuts), so the TypeScript implementation (spectral, t = beta/alpha form) is checked
against an independent one:
  LogME   You et al., ICML 2021, Algorithm 1 (alpha = beta = 1 start, fixed point, evidence / n)
  H-score Bao et al. 2019 with the Ledoit-Wolf shrinkage of Ibrahim et al. 2022 (H_alpha)
  NCE     Tran et al. 2019;  LEEP  Nguyen et al. 2020
  kNN     leave-one-out cosine kNN with graft's tie rules
  weighted tau: scipy.stats.weightedtau itself.
Run: /usr/bin/python3 scripts/gen_rank_fixture.py   (Debian numpy, scipy; sklearn for its digits data and an
optional cross-check of the Ledoit-Wolf intensity)
"""
import json
import os

import numpy as np
from scipy import stats

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'rank', 'reference.json')
rng = np.random.default_rng(20261203)


def logme_class(f, y):
    """Maximised log evidence / n of one label column (paper's equations, literal)."""
    n, dim = f.shape
    ftf = f.T @ f
    fty = f.T @ y
    alpha, beta = 1.0, 1.0
    prev = np.nan
    for _ in range(10000):
        a = alpha * np.eye(dim) + beta * ftf
        m = beta * np.linalg.solve(a, fty)
        gamma = beta * np.trace(np.linalg.solve(a, ftf))
        res = float(np.sum((f @ m - y) ** 2))
        mtm = float(m @ m)
        logdet = np.linalg.slogdet(a)[1]
        ev = (n / 2 * np.log(beta) + dim / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
              - beta / 2 * res - alpha / 2 * mtm - logdet / 2)
        if abs(ev - prev) <= 1e-12 * n:
            break
        prev = ev
        alpha = gamma / mtm
        beta = (n - gamma) / res
    return ev / n


def logme(f, y, k):
    return float(np.mean([logme_class(f, (y == c).astype(np.float64)) for c in range(k)]))


def ledoit_wolf(f):
    """Shrunk covariance and intensity (Ledoit & Wolf 2004), population (1/n) covariance of centred f."""
    n, dim = f.shape
    fc = f - f.mean(0)
    s = fc.T @ fc / n
    mu = np.trace(s) / dim
    delta = np.sum((s - mu * np.eye(dim)) ** 2) / dim
    b = sum(np.sum((np.outer(r, r) - s) ** 2) for r in fc) / n ** 2 / dim
    a = min(b, delta) / delta if delta > 0 else 0.0
    return (1 - a) * s + a * mu * np.eye(dim), a


def hscore(f, y, k):
    n, dim = f.shape
    shrunk, a = ledoit_wolf(f)
    try:
        from sklearn.covariance import ledoit_wolf_shrinkage
        assert abs(ledoit_wolf_shrinkage(f) - a) <= 1e-10 * max(a, 1e-300), (ledoit_wolf_shrinkage(f), a)
    except ImportError:
        pass
    g = np.zeros_like(f)
    for c in range(k):
        g[y == c] = f[y == c].mean(0)
    gc = g - g.mean(0)
    between = gc.T @ gc / n
    return float(np.trace(np.linalg.pinv(shrunk, rcond=1e-12) @ ((1 - a) * between)))


def knn(f, y, k, neighbors):
    n = len(y)
    norms = np.sqrt(np.sum(f ** 2, 1))
    fn = f / np.where(norms > 0, norms, 1)[:, None]
    sims = fn @ fn.T
    correct = 0
    for i in range(n):
        cand = sorted((j for j in range(n) if j != i), key=lambda j: (-sims[i, j], j))[:neighbors]
        count = np.zeros(k)
        total = np.zeros(k)
        for j in cand:
            count[y[j]] += 1
            total[y[j]] += sims[i, j]
        best = min(range(k), key=lambda c: (-count[c], -total[c], c))
        correct += best == y[i]
    return correct / n


def reduce(f, max_dim):
    """Features wider than max_dim: their rank-max_dim truncated SVD without centring, z = U S, with zero
    columns up to max_dim when the rank is lower (so the H-score's shrinkage sees max_dim dimensions)."""
    if f.shape[1] <= max_dim:
        return f
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    r = min(len(s), max_dim)
    z = u[:, :r] * s[:r]
    return np.hstack([z, np.zeros((z.shape[0], max_dim - r))])


def f32(a):
    return [float(np.format_float_positional(v, unique=True)) for v in np.asarray(a, np.float32).ravel()]


def features(n, d, k, sep, counts=None):
    """Class means plus anisotropic noise plus a positive offset, like pooled CNN features; float32."""
    y = np.repeat(np.arange(k), counts) if counts is not None else np.arange(n) % k
    rng.shuffle(y)
    means = rng.normal(size=(k, d)) * sep
    scale = 0.3 + np.exp(-np.arange(d) / (d / 3))
    x = means[y] + rng.normal(size=(len(y), d)) * scale + 0.5
    return np.round(x, 4).astype(np.float32), y.astype(np.int32)  # 4 decimals keep the JSON small


def case(name, x, y, k, max_dim=256):
    n, d = x.shape
    f = x.astype(np.float64)
    z = reduce(f, max_dim)
    return {
        'name': name, 'n': n, 'd': d, 'k': k, 'maxDim': max_dim, 'x': f32(x), 'y': y.tolist(),
        'logme': logme(z, y, k), 'hScore': hscore(z, y, k),
        'knn5': knn(f, y, k, 5), 'knn1': knn(f, y, k, 1),
    }


def nce(z, y, kz, k):
    joint = np.zeros((kz, k))
    np.add.at(joint, (z, y), 1)
    p = joint / len(y)
    pz = p.sum(1, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log((p / np.where(pz > 0, pz, 1))[nz])))


def leep(theta, y, k):
    n, kz = theta.shape
    joint = np.zeros((k, kz))
    for c in range(k):
        joint[c] = theta[y == c].sum(0) / n
    cond = joint / joint.sum(0, keepdims=True)  # P(y | z)
    return float(np.mean(np.log(np.sum(cond[y] * theta, 1))))


def source_case(name, n, kz, k, temp):
    y = (np.arange(n) % k).astype(np.int32)
    rng.shuffle(y)
    assign = rng.integers(0, kz, size=k)  # each target class looks like one source class
    logits = rng.normal(size=(n, kz)) + temp * np.eye(kz)[assign[y]]
    theta = np.exp(logits - logits.max(1, keepdims=True))
    theta = np.round(theta / theta.sum(1, keepdims=True), 5).astype(np.float32)
    t64 = theta.astype(np.float64)
    z = np.argmax(t64, 1)
    return {'name': name, 'n': n, 'kSource': kz, 'k': k, 'probs': f32(theta), 'y': y.tolist(),
            'nce': nce(z, y, kz, k), 'leep': leep(t64, y, k)}


def main():
    cases = []
    x, y = features(150, 16, 3, 0.35)
    cases.append(case('n>d', x, y, 3))
    x, y = features(40, 50, 4, 0.2)
    cases.append(case('n<d', x, y, 4))
    x, y = features(101, 8, 5, 0.5, counts=[50, 30, 15, 5, 1])
    cases.append(case('imbalanced, a class of one', x, y, 5))
    x, y = features(80, 5, 2, 0.3)
    cases.append(case('k=2, weak signal', x, y, 2))
    x, y = features(90, 30, 3, 0.2)
    cases.append(case('reduced by columns (n > d > maxDim)', x, y, 3, max_dim=8))
    x, y = features(50, 60, 3, 0.4)
    cases.append(case('reduced by rows (d > n > maxDim)', x, y, 3, max_dim=10))
    x, y = features(30, 60, 3, 0.2)
    cases.append(case('padded (n <= maxDim < d)', x, y, 3, max_dim=40))
    from sklearn.datasets import load_digits
    digits = load_digits()
    idx = np.sort(rng.choice(len(digits.target), 200, replace=False))
    cases.append(case('sklearn digits, 200 rows', digits.data[idx].astype(np.float32), digits.target[idx].astype(np.int32), 10))

    sources = [source_case('clear', 120, 6, 3, 3.0), source_case('noisy, more target classes', 90, 4, 5, 0.8)]

    taus = []
    for n, ties in [(5, False), (12, False), (20, True), (40, True)]:
        a = rng.normal(size=n)
        b = a + rng.normal(size=n) * 0.8
        if ties:
            a = np.round(a * 2) / 2
            b = np.round(b * 2) / 2
        taus.append({'x': a.tolist(), 'y': b.tolist(), 'tau': float(stats.weightedtau(a, b).statistic)})
    taus.append({'x': [12, 2, 1, 12, 2], 'y': [1, 4, 7, 1, 0], 'tau': float(stats.weightedtau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]).statistic)})

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as fh:
        json.dump({'generator': 'scripts/gen_rank_fixture.py', 'numpy': np.__version__, 'scipy': __import__('scipy').__version__,
                   'features': cases, 'sources': sources, 'weightedTau': taus}, fh, separators=(',', ':'))
    for c in cases:
        print(f"{c['name']:40s} logme {c['logme']:+.6f}  hScore {c['hScore']:.6f}  knn5 {c['knn5']:.3f}  knn1 {c['knn1']:.3f}")
    for s in sources:
        print(f"{s['name']:40s} nce {s['nce']:+.6f}  leep {s['leep']:+.6f}")
    print('weighted tau', [round(t['tau'], 6) for t in taus])
    print(OUT, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
