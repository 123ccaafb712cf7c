"""Traced ``sorted`` over many small integers uses a counting sort (grown and replayed
when the values span more than it covers); it must equal Python's ``sorted``."""

import numpy as np

import mesa_jax as mesa


class Holder(mesa.Agent):
    def __init__(self, model, value):
        super().__init__(model)
        self.value = value


class Sorter(mesa.Model):
    def __init__(self, values, seed=None):
        super().__init__(seed=seed)
        for v in values:
            Holder(self, int(v))
        self.first = 0
        self.last = 0
        self.weighted = 0
        self.quartile = 0
        self.median = 0

    def step(self):
        xs = sorted(a.value for a in self.agents)
        n = len(xs)
        self.first = xs[0]
        self.last = xs[n - 1]
        self.weighted = sum(x * (n - i) for i, x in enumerate(xs))
        self.quartile = xs[n // 4]
        self.median = xs[n // 2]


def _check(values):
    m = Sorter(values, seed=1)
    m.step()
    xs = sorted(int(v) for v in values)
    n = len(xs)
    assert (m.first, m.last) == (xs[0], xs[-1])
    assert (m.quartile, m.median) == (xs[n // 4], xs[n // 2])
    weighted = sum(x * (n - i) for i, x in enumerate(xs))
    if abs(weighted) < 2**31:
        assert m.weighted == weighted
    return m


def test_counting_sort_small_span():
    _check(np.random.default_rng(0).poisson(2, 3000) - 3)


def test_counting_sort_wide_span_is_replayed():
    m = _check(np.random.default_rng(1).integers(-5000, 5000, 3000))
    assert m._mj_compiled.replays > 0
