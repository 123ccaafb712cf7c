"""Every traced random method a Mesa step may call: values in range, distributions right
(stated tolerances, 1,000 agents), the same seed gives the same draws and another seed
other draws."""

import numpy as np
import pytest

import mesa_jax


class Drawer(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.r = self.un = self.g = self.rr = self.rn = 0.0
        self.ch = self.hits = self.s0 = self.s1 = self.first = self.rc = self.ri = 0

    def step(self):
        self.r = self.random.random()
        self.un = self.random.uniform(2.0, 5.0)
        self.ch = self.random.choice([3, 5, 7])
        picks = self.random.choices([1, 2, 3], weights=[0.0, 1.0, 3.0], k=4)
        self.hits = sum(1 for p in picks if p == 3) + 10 * sum(1 for p in picks if p == 1)
        pair = self.random.sample([10, 20, 30, 40], 2)
        self.s0, self.s1 = pair[0], pair[1]
        pool = [a for a in self.model.agents if a is not self]
        self.random.shuffle(pool)
        self.first = pool[0].unique_id
        self.g = self.random.gauss(0.0, 1.0)
        self.rr = self.rng.random()
        self.rn = self.rng.normal(1.0, 2.0)
        self.rc = self.rng.choice([4, 8])
        self.ri = self.rng.choice(6)


class DrawModel(mesa_jax.Model):
    def __init__(self, seed):
        super().__init__(seed=seed)
        Drawer.create_agents(self, 1000)

    def step(self):
        self.agents.do("step")


NAMES = ["r", "un", "ch", "hits", "s0", "s1", "first", "g", "rr", "rn", "rc", "ri"]


def _draws(seed):
    m = DrawModel(seed)
    m.step()
    assert m._mj_compiled._shared is not None  # the compiled step ran, not the eager one
    return {k: np.array(m.agents.get(k)) for k in NAMES}, np.array(m.agents.get("unique_id"))


@pytest.fixture(scope="module")
def draws():
    return _draws(5)


def test_ranges_and_distributions(draws):
    d, uid = draws
    assert 0 <= d["r"].min() and d["r"].max() < 1 and abs(d["r"].mean() - 0.5) < 0.03
    assert 2 <= d["un"].min() and d["un"].max() < 5 and abs(d["un"].mean() - 3.5) < 0.1
    assert set(d["ch"].tolist()) == {3, 5, 7}
    assert all(abs((d["ch"] == v).mean() - 1 / 3) < 0.05 for v in (3, 5, 7))
    # weights 0:1:3 over four picks: never 1, three in four are 3
    assert d["hits"].max() <= 4 and abs(d["hits"].mean() / 4 - 0.75) < 0.03
    assert (d["s0"] != d["s1"]).all() and set(d["s0"]) | set(d["s1"]) == {10, 20, 30, 40}
    assert (d["first"] != uid).all() and abs(d["first"].mean() - uid.mean()) < 30
    assert abs(d["g"].mean()) < 0.1 and abs(d["g"].std() - 1) < 0.08
    assert 0 <= d["rr"].min() and d["rr"].max() < 1 and abs(d["rr"].mean() - 0.5) < 0.03
    assert abs(d["rn"].mean() - 1) < 0.2 and abs(d["rn"].std() - 2) < 0.15
    assert set(d["rc"].tolist()) == {4, 8} and abs((d["rc"] == 8).mean() - 0.5) < 0.05
    assert set(d["ri"].tolist()) == set(range(6))


def test_same_seed_same_draws_other_seed_other_draws(draws):
    again, _ = _draws(5)
    other, _ = _draws(6)
    for k in NAMES:
        np.testing.assert_array_equal(draws[0][k], again[k])
    assert sum(not np.array_equal(draws[0][k], other[k]) for k in NAMES) == len(NAMES)
