"""Two-sample Kolmogorov-Smirnov test (asymptotic p-value), so the tests need no SciPy."""

import math

import numpy as np


def ks_2samp(a, b):
    """Return (statistic D, p-value) for samples ``a`` and ``b``."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / len(a)
    cdf_b = np.searchsorted(b, both, side="right") / len(b)
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * (k * lam) ** 2) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)
