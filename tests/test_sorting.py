"""Traced ``sorted`` over many small integers uses a counting sort (grown and replayed
when the values span more than it covers); it must equal Python's ``sorted``."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("k", [1, 7, 64, 65, 243, 1000, 4096, 4097, 10000, 16384, 16385, 300001])
def test_prefix_count_equals_cumsum(k):
    """The triangular-product running counts (one level, two levels, blocks of 64 over
    a running sum of the blocks' totals) equal cumsum."""
    import jax
    import jax.numpy as jnp

    from mesa_jax._collections import prefix_count

    mask = jax.random.uniform(jax.random.PRNGKey(k), (3, k)) < 0.4
    assert (np.asarray(prefix_count(mask)) == np.cumsum(np.asarray(mask), axis=-1)).all()
    assert prefix_count(jnp.ones(k, bool))[-1] == k


def test_masked_row_reductions_equal_numpy():
    """Per-component reductions and norms of MaskedRows equal numpy on the valid rows."""
    from mesa_jax._masked import MaskedRows

    rng = np.random.default_rng(0)
    data = rng.normal(size=(40, 3)).astype(np.float32)
    mask = rng.random(40) < 0.5
    rows = MaskedRows(data, mask)
    for name in ("sum", "max", "min"):
        np.testing.assert_allclose(getattr(rows, name)(axis=0), getattr(data[mask], name)(axis=0),
                                   rtol=1e-5)
    np.testing.assert_allclose(np.asarray(rows.apply(np.linalg.norm, (rows,), {"axis": 1}).data)[mask],
                               np.linalg.norm(data[mask], axis=1), rtol=1e-5)
    np.testing.assert_allclose(rows.apply(np.linalg.norm, (rows, 1, 1), {}).data[mask],
                               np.abs(data[mask]).sum(axis=1), rtol=1e-5)
