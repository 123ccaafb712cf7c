"""Model / Agent / AgentSet / DataCollector behaviour, compiled and eager, against Mesa."""

import enum
import subprocess
import sys
import types

import numpy as np
import polars as pl
import pytest

import mesa
import mesa.discrete_space
import mesa_jax
import mesa_jax.discrete_space
from compat_examples.boltzmann_wealth_model.model import BoltzmannWealth
from compat_examples.boltzmann_wealth_multigrid.model import MoneyModel
from _stats import ks_2samp


def test_hundred_steps_trace_once():
    class Fresh(BoltzmannWealth):  # a new class: nothing shared from other tests
        pass

    m = Fresh(n=30, width=5, height=5, seed=3)
    for _ in range(100):
        m.step()
    cs = m._mj_compiled
    assert cs.trace_count == 1
    assert m.steps == 100
    assert len(m.datacollector.model_vars["Gini"]) == 101


def test_unique_ids_and_create_agents_split_sequences():
    m = BoltzmannWealth(n=10, width=3, height=3, seed=1)
    ids = sorted(a.unique_id for a in m.agents)
    assert ids == list(range(1, 11))  # Mesa counts from 1 per model
    cells = m.grid.all_cells.cells
    made = type(next(iter(m.agents))).create_agents(m, 3, [cells[0], cells[1], cells[2]])
    assert [a.cell for a in made] == [cells[0], cells[1], cells[2]]
    assert [a.unique_id for a in made] == [11, 12, 13]


def test_agentset_api_eager_matches_mesa():
    class A(mesa.Agent):
        def __init__(self, model, v):
            super().__init__(model)
            self.v = v

    class B(mesa_jax.Agent):
        def __init__(self, model, v):
            super().__init__(model)
            self.v = v

    ma, mb = mesa.Model(seed=1), mesa_jax.Model(seed=1)
    vals = [3, 1, 4, 1, 5, 9, 2, 6]
    A.create_agents(ma, len(vals), vals)
    B.create_agents(mb, len(vals), vals)
    for m in (ma, mb):
        assert len(m.agents) == 8
    assert ma.agents.get("v") == mb.agents.get("v")
    assert ma.agents.agg("v", sum) == mb.agents.agg("v", sum)
    assert len(ma.agents.select(lambda a: a.v > 2)) == len(mb.agents.select(lambda a: a.v > 2))
    assert ma.agents.map(lambda a: a.v * 2) == mb.agents.map(lambda a: a.v * 2)
    mb.agents.set("v", 0)
    assert mb.agents.get("v") == [0] * 8
    first = next(iter(mb.agents))
    first.remove()
    assert len(mb.agents) == 7


def test_compiled_and_eager_agree_for_deterministic_logic():
    class Counter(mesa_jax.Agent):
        def __init__(self, model, k):
            super().__init__(model)
            self.k = k
            self.total = 0

        def step(self):
            if self.k % 3 == 0:
                self.total += self.k
            else:
                self.total -= 1

    class CounterModel(mesa_jax.Model):
        def __init__(self, seed=None):
            super().__init__(seed=seed)
            Counter.create_agents(self, 20, list(range(20)))
            self.sum_total = 0

        def step(self):
            self.agents.do("step")
            self.sum_total = self.agents.agg("total", np.sum)

    out = {}
    for jit in (True, False):
        mesa_jax.set_jit(jit)
        try:
            m = CounterModel(seed=1)
            for _ in range(5):
                m.step()
        finally:
            mesa_jax.set_jit(True)
        out[jit] = ([a.total for a in m.agents], int(m.sum_total))
    assert out[True] == out[False]
    assert out[True][1] != 0


def test_model_attribute_written_in_step_becomes_state():
    class Acc(mesa_jax.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.w = 2

        def step(self):
            self.model.pot += self.w

    class AccModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            Acc.create_agents(self, 10)
            self.pot = 0
            self.flag = False

        def step(self):
            self.agents.do("step")
            if self.pot > 50:
                self.flag = True

    m = AccModel()
    for _ in range(3):
        m.step()
    assert m.pot == 60 and m.flag is True
    assert isinstance(m.pot, int)



def _vector_model(base):
    class Mover(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.v = np.array([1.0, 2.0])

        def step(self):
            self.v = self.v * 0.5

    class Field(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            Mover.create_agents(self, 2)

        def step(self):
            self.agents.do("step")

    return Field()


def _vector_edits(model):
    """Host-side edits of an agent's vector attribute between steps, as Mesa users
    write them; what each leaves behind."""
    a = next(iter(model.agents))
    seen = []
    model.step()
    old = a.v
    a.v = np.array([5.0, 4.0])  # reassigning leaves a reference taken before alone
    seen.append(list(old))
    a.v[1] = 0.0  # item assignment
    seen.append(list(a.v))
    v = a.v
    v += 1.0  # in-place arithmetic on a reference
    seen.append(list(a.v))
    a.v /= 2.0
    seen.append(list(a.v))
    np.multiply(a.v, 4.0, out=a.v)
    seen.append(list(a.v))
    a.v.fill(8.0)
    seen.append(list(a.v))
    w = a.v.copy()
    w[0] = -1.0  # a copy is the user's own
    seen.append((list(w), list(a.v)))
    model.step()
    seen.append(list(a.v))
    return [[float(x) for x in s] if not isinstance(s, tuple) else tuple([float(x) for x in t] for t in s)
            for s in seen]


def test_agent_vector_attributes_edited_on_the_host_as_in_mesa():
    ours = _vector_edits(_vector_model(mesa_jax))
    assert ours == _vector_edits(_vector_model(mesa))
    a = next(iter(_vector_model(mesa_jax).agents))
    with pytest.raises(ValueError, match="read-only"):
        a.v[0:1][0] = 3.0  # through a slice: an error, not a lost write
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(a.v)[0] = 3.0
    assert list(a.v) == [1.0, 2.0]


def _parameters_model(base, scale):
    class Reader(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.w = 0

        def step(self):
            cfg = self.model.config
            self.w = (self.w + self.model.weights[70] + self.model.table["k7"] + cfg.rate
                      + cfg.nested["a"][0])

    class Params(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.weights = [i * scale for i in range(100)]  # longer than any shortcut
            self.table = {f"k{i}": i * scale for i in range(100)}
            self.config = types.SimpleNamespace(rate=scale, nested={"a": [scale]})
            Reader.create_agents(self, 2)

        def step(self):
            self.agents.do("step")

    return Params()


def test_host_parameters_a_step_reads_are_not_stale():
    """A step bakes in the host values it reads (a long list, a dict, a parameters
    object). Another model of the same shape with other values, and the same model after
    a host edit, must not reuse a program built for the old values."""
    results = []
    for base in (mesa, mesa_jax):
        m1, m2 = _parameters_model(base, 1), _parameters_model(base, 10)
        m1.step()
        m2.step()
        seen = [m1.agents.get("w"), m2.agents.get("w")]
        m2.weights[70] = 1000
        m2.step()
        seen.append(m2.agents.get("w"))
        m2.config.rate = 5000
        m2.step()
        seen.append(m2.agents.get("w"))
        m2.config.nested["a"][0] = 70000  # deep inside the parameters object
        m2.step()
        seen.append(m2.agents.get("w"))
        m1.step()
        seen.append(m1.agents.get("w"))
        results.append(seen)
    assert results[1] == results[0]


class _Phase(enum.Enum):
    CALM = 1
    BUSY = 2


def _phase_model(base):
    class Worker(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.phase = _Phase.CALM

        def step(self):
            if self.unique_id % 2 == 0:
                self.phase = _Phase.BUSY

    class Shop(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            Worker.create_agents(self, 3)
            self.datacollector = base.DataCollector(
                agent_reporters={"Phase": "phase", "Seen": lambda a: a.phase})
            self.datacollector.collect(self)

        def step(self):
            self.agents.do("step")
            self.datacollector.collect(self)

    return Shop()


def test_enum_attribute_reporter_gives_member_names():
    frames = []
    for base in (mesa, mesa_jax):
        m = _phase_model(base)
        m.step()
        frames.append(m.datacollector.get_agent_vars_dataframe())
    ours = frames[1]
    for name in ("Phase", "Seen"):
        assert ours[name].to_list() == [p.name for p in frames[0][name]]
        assert ours[name].dtype == pl.Enum(["CALM", "BUSY"])


def _ward_model(base):
    class Patient(base.Agent):
        def __init__(self, model, i):
            super().__init__(model)
            self.state = ("S", "I", "R", "S")[i % 4]
            self.days = i % 3

        def step(self):
            if self.state == "I":
                self.days += 1
                if self.days > 2:
                    self.state = "R"
            elif self.state != "R" and (self.unique_id % 3 == 0 or
                                        any(a.state == "Q" for a in self.model.agents)):
                self.state = "I"
            tag = "late" if self.days > 3 else "early"
            if tag == "late" and self.state in ("R", "X"):
                self.state = "D"

    class Nurse(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.state = "Q" if model.alarm else "N"

        def step(self):
            pass

    class Ward(base.Model):
        def __init__(self, alarm):
            super().__init__(seed=1)
            self.alarm = alarm
            for i in range(12):
                Patient(self, i)
            Nurse(self)
            self.infected = 0
            self.datacollector = base.DataCollector(
                agent_reporters={"State": "state", "Seen": lambda a: a.state})
            self.datacollector.collect(self)

        def step(self):
            self.agents.do("step")
            self.infected = sum(1 for a in self.agents if a.state == "I")
            self.datacollector.collect(self)

    return Ward


@pytest.mark.parametrize("alarm", [False, True])
def test_text_attributes_in_steps_match_mesa(alarm):
    """String attributes compared, assigned and reported in compiled steps: the same
    states, counts and frames as Mesa, step for step (deterministic logic)."""
    runs = []
    for base in (mesa, mesa_jax):
        m = _ward_model(base)(alarm)
        states = []
        for _ in range(5):
            m.step()
            states.append(([a.state for a in m.agents], int(m.infected)))
        runs.append((states, m.datacollector.get_agent_vars_dataframe()))
    (theirs, theirs_df), (ours, ours_df) = runs
    assert ours == theirs
    assert len({s for step, _ in theirs for s in step}) >= 3
    for name in ("State", "Seen"):
        assert ours_df[name].to_list() == list(theirs_df[name])
        assert ours_df[name].dtype == pl.String


def test_text_attributes_on_the_host_as_in_mesa():
    m = _ward_model(mesa_jax)(False)
    m.step()
    a = next(iter(m.agents))
    a.state = "Z"
    assert a.state == "Z" and "Z" in m.agents.get("state")
    assert len(m.agents.select(lambda x: x.state == "Z")) == 1
    m.step()  # a code set on the host, read by the compiled step: "Z" stays "Z"
    assert a.state == "Z"
    a.state = 3  # Mesa lets any value in: the column keeps objects from here on
    assert a.state == 3 and isinstance(list(m.agents)[1].state, str)


def _halving_model(base):
    class Halver(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.x = 1  # an int ...
            self.payoff = 0

        def step(self):
            self.x = self.x * 0.5  # ... given a float, as Python allows
            self.payoff += {1: 1.6, 2: 0}[self.unique_id % 2 + 1]

    class Halving(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            Halver.create_agents(self, 3)

        def step(self):
            self.agents.do("step")

    return Halving()


def test_int_attribute_given_a_float_holds_floats_as_in_mesa():
    """An attribute started as an int and assigned floats in a step (`x * 0.5`, `+=` of a
    dict's float value looked up by a traced key) holds floats, as in Python."""
    runs = []
    for base in (mesa, mesa_jax):
        m = _halving_model(base)
        out = []
        for _ in range(3):
            m.step()
            out.append([(a.x, round(a.payoff, 5)) for a in m.agents])
        runs.append(out)
    assert runs[1] == runs[0]
    assert runs[0][-1][0] == (0.125, 0.0)


def _lookup_model():
    class Looker(mesa_jax.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.x = 0

        def step(self):
            self.x = {1: 5, 2: 6}[self.unique_id]

    class Lookup(mesa_jax.Model):
        def __init__(self, n):
            super().__init__(seed=1)
            Looker.create_agents(self, n)

        def step(self):
            self.agents.do("step")

    return Lookup


def test_dict_lookup_by_a_traced_key_as_in_python():
    lookup = _lookup_model()
    m = lookup(2)
    m.step()
    assert [a.x for a in m.agents] == [5, 6]
    m = lookup(3)  # agent 3's key is missing: Python's KeyError, after the step
    with pytest.raises(KeyError):
        m.step()
    assert [a.x for a in m.agents] == [0, 0, 0]  # the state before the step is kept


def _census_model(base):
    class Voter(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.phase = _Phase.CALM
            self.keen = self.unique_id % 3 == 0
            self.score = self.unique_id

        def step(self):
            if self.unique_id % 2 == 0:
                self.phase = _Phase.BUSY

    class Census(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            Voter.create_agents(self, 7)
            self.CALM, self.BUSY, self.keen = 0, 0, 0
            self._count()

        def _count(self):
            counts = self.agents.groupby("phase").count()
            for phase in _Phase:
                setattr(self, phase.name, counts.get(phase, 0))
            self.keen = self.agents.groupby("keen").count().get(True, 0)

        def step(self):
            self.agents.do("step")
            self._count()

    return Census()


def test_groupby_counts_in_steps_and_on_the_host_as_in_mesa():
    """Mesa's GroupBy (`groupby(...).count()` as in its Epstein example): on the host any
    key; in a compiled step by an Enum or bool attribute."""
    runs = []
    for base in (mesa, mesa_jax):
        m = _census_model(base)
        before = (m.CALM, m.BUSY, m.keen)
        m.step()
        g = m.agents.groupby("phase")
        host = ({k.name: v for k, v in g.count().items()},
                {k.name: v for k, v in g.agg("score", sum).items()},
                {k.name: sorted(v) for k, v in g.map(lambda grp: [a.unique_id for a in grp]).items()},
                {k.name: v for k, v in g.do("shuffle").map("__len__").items()},
                len(g), sorted(k.name for k, _ in g))
        runs.append((before, (int(m.CALM), int(m.BUSY), int(m.keen)), host))
    assert runs[1] == runs[0]
    assert runs[0][1] == (4, 3, 2)


def _watch_model(base, ds):
    class Watcher(ds.CellAgent):
        def __init__(self, model, cell, kind):
            super().__init__(model)
            self.cell = cell
            self.kind = kind
            self.seen = 0
            self.weight = 0.0

        def step(self):
            friends = 0
            strangers = 1
            weight = 0.0
            for other in self.cell.get_neighborhood(radius=4).agents:  # 80 cells: > 64
                if other.kind == self.kind:
                    friends += 1
                    weight += other.kind * 0.5 + 1
                else:
                    strangers -= -1
            self.seen = friends * 100 + strangers
            self.weight = weight

    class World(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = ds.OrthogonalMooreGrid((12, 12), torus=True, random=self.random)
            for i, cell in enumerate(self.random.sample(list(self.grid.all_cells), 90)):
                Watcher(self, cell, i % 3)
            self.total = 0

        def step(self):
            self.agents.do("step")
            total = 0
            for a in self.agents:  # 90 agents
                total += a.seen
            self.total = total

    return World()


def test_loops_that_only_add_run_vectorised_at_any_size():
    """`for` loops whose carried variables are only `+=`/`-=` (counting neighbours by
    kind) over more than 64 elements: sums over the iterations, equal to Mesa's."""
    runs = []
    for base, ds in ((mesa, mesa.discrete_space), (mesa_jax, mesa_jax.discrete_space)):
        m = _watch_model(base, ds)
        m.step()
        runs.append((m.total, [(a.seen, a.weight) for a in m.agents]))
    assert runs[1] == runs[0]
    assert max(s for s, _ in runs[0][1]) > 300  # several friends seen


def _scratch_model():
    class Looker(mesa_jax.discrete_space.CellAgent):
        def __init__(self, model, cell):
            super().__init__(model)
            self.cell = cell
            self.near = []
            self.count = 0

        def step(self):
            if self.unique_id % 2 == 0:
                self.near = [c for c in self.cell.neighborhood if c.is_empty]  # cells: kept for the step
            self.count = len(self.near)

    class M(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            grid = mesa_jax.discrete_space.OrthogonalMooreGrid((5, 5), torus=True, random=self.random)
            for i, cell in enumerate(list(grid.all_cells)[:4]):
                Looker(self, cell)

        def step(self):
            self.agents.do("step")

    return M()


def test_collections_kept_in_attributes_for_the_step_only():
    """An attribute assigned a list of cells holds it for the rest of the agent's step;
    an agent whose branch skipped the assignment gets Python's AttributeError after the
    step (the state before the step is kept)."""
    m = _scratch_model()
    with pytest.raises(AttributeError, match="had not assigned for that agent"):
        m.step()
    assert [a.count for a in m.agents] == [0, 0, 0, 0]


def _retyping_model(base):
    class Counter(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.x = 0
            self.y = 0.0

        def step(self):
            self.x = self.x + 1
            self.y = self.y + 0.5

    return Counter()


def test_attribute_changing_type_between_steps_reads_back_as_mesa():
    """An int attribute set to a float from the host traces the step again; setting an
    int again reuses the first program, and its outputs must be read with that
    program's layout (they were read with the last trace's: 3 + 1 came back as 5.6e-45)."""
    values = []
    for model in (_retyping_model(mesa), _retyping_model(mesa_jax)):
        seen = []
        for host_x in (None, 1.5, 3, 2.25, 7):
            if host_x is not None:
                model.x = host_x
            model.step()
            seen.append((model.x, model.y))
        values.append(seen)
    assert values[1] == values[0]
    assert [type(x) for x, _ in values[1]] == [type(x) for x, _ in values[0]]

def test_capacity_overflow_is_replayed_never_dropped():
    # 200 agents on 2x2 cells: ~50 per cell, far above the initial 8 slots
    m = BoltzmannWealth(n=200, width=2, height=2, seed=5)
    for _ in range(10):
        m.step()
    cs = m._mj_compiled
    assert cs.replays >= 1
    assert max(cs.capacities.values()) >= 64
    assert sum(a.wealth for a in m.agents) == 200
    # agents really found their cellmates: money moved
    assert max(a.wealth for a in m.agents) > 1


def test_datacollector_frames():
    m = BoltzmannWealth(n=20, width=4, height=4, seed=2)
    for _ in range(3):
        m.step()
    mv = m.datacollector.get_model_vars_dataframe()
    av = m.datacollector.get_agent_vars_dataframe()
    assert isinstance(mv, pl.DataFrame) and mv.columns == ["Gini"] and mv.height == 4
    assert av.columns == ["Step", "AgentID", "Wealth"]
    assert av.height == 4 * 20
    assert sorted(av["Step"].unique().to_list()) == [0, 1, 2, 3]
    assert isinstance(m.datacollector.get_agent_vars_lazyframe(), pl.LazyFrame)


def test_run_for_scans_and_collects_every_step():
    m = BoltzmannWealth(n=20, width=4, height=4, seed=2)
    m.run_for(7)
    assert m.steps == 7
    assert len(m.datacollector.model_vars["Gini"]) == 8
    assert sum(a.wealth for a in m.agents) == 20


def test_multigrid_compat_matches_mesa_tutorial():
    """Legacy MultiGrid: 30 seeds each, final Gini KS p > 0.01 (batched:16 activation)."""

    class MesaMoney(mesa.Model):
        def __init__(self, n=100, width=10, height=10, seed=None):
            super().__init__(seed=seed)
            self.num_agents = n
            self.grid = mesa.space.MultiGrid(width, height, True)
            for _ in range(n):
                a = MesaAgent(self)
                self.grid.place_agent(a, (self.random.randrange(width), self.random.randrange(height)))

        def step(self):
            self.agents.shuffle_do("step")

    class MesaAgent(mesa.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.wealth = 1

        def step(self):
            steps = self.model.grid.get_neighborhood(self.pos, moore=True, include_center=False)
            self.model.grid.move_agent(self, self.random.choice(steps))
            if self.wealth > 0:
                mates = [a for a in self.model.grid.get_cell_list_contents([self.pos]) if a is not self]
                if mates:
                    self.random.choice(mates).wealth += 1
                    self.wealth -= 1

    def gini(ws):
        x = np.sort(ws)
        n = len(x)
        return 1 + 1 / n - 2 * np.sum(x * (n - np.arange(n))) / (n * x.sum())

    theirs, ours = [], []
    mesa_jax.set_activation("batched:16")
    try:
        for seed in range(30):
            a = MesaMoney(seed=seed)
            b = MoneyModel(seed=seed)
            for _ in range(60):
                a.step()
                b.step()
            theirs.append(gini([x.wealth for x in a.agents]))
            ours.append(b.datacollector.model_vars["Gini"][-1])
            assert sum(x.wealth for x in b.agents) == 100
    finally:
        mesa_jax.set_activation("parallel")
    d, p = ks_2samp(ours, theirs)
    assert p > 0.01, (d, p, np.mean(ours), np.mean(theirs))
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.03


def test_multigrid_neighbourhood_matches_mesa():
    ours = mesa_jax.space.MultiGrid(5, 4, torus=False)
    theirs = mesa.space.MultiGrid(5, 4, torus=False)
    for pos in [(0, 0), (2, 2), (4, 3)]:
        for moore in (True, False):
            for inc in (True, False):
                for r in (1, 2):
                    assert set(ours.get_neighborhood(pos, moore, inc, r)) == set(
                        theirs.get_neighborhood(pos, moore, inc, r))


def test_redirect_runs_unmodified_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import mesa\n"
        "from mesa.examples.basic.boltzmann_wealth_model.model import BoltzmannWealth\n"
        "m = BoltzmannWealth(n=30, width=5, height=5, seed=1)\n"
        "for _ in range(5):\n"
        "    m.step()\n"
        "print(type(m).__mro__[1].__module__, m.steps, sum(a.wealth for a in m.agents))\n"
    )
    out = subprocess.run([sys.executable, "-m", "mesa_jax", "run", str(script)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mesa_jax.model", "5", "30"]


def test_real_mesa_untouched_outside_redirect():
    from mesa_jax.redirect import mesa_example

    mod = mesa_example("mesa.examples.basic.boltzmann_wealth_model.model")
    assert issubclass(mod.BoltzmannWealth, mesa_jax.Model)
    import mesa.examples.basic.boltzmann_wealth_model.model as real

    assert issubclass(real.BoltzmannWealth, mesa.Model)
    assert not issubclass(real.BoltzmannWealth, mesa_jax.Model)


def test_traced_random_draws_cover_their_ranges():
    """Draws in compiled steps: in range, and uniform in the mean, also for spans > 2**16."""

    class Drawer(mesa_jax.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.big = 0
            self.small = 0
            self.u = 0.0
            self.g = 0

        def step(self):
            self.big = self.random.randrange(1_000_000)
            self.small = self.random.randint(1, 6)
            self.u = self.rng.uniform(2.0, 4.0)
            self.g = self.rng.integers(0, 100_000)

    class DrawModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=4)
            Drawer.create_agents(self, 4000)

        def step(self):
            self.agents.do("step")

    m = DrawModel()
    m.step()
    big = np.array(m.agents.get("big"))
    small = np.array(m.agents.get("small"))
    u = np.array(m.agents.get("u"))
    g = np.array(m.agents.get("g"))
    assert big.min() >= 0 and big.max() < 1_000_000 and abs(big.mean() / 1e6 - 0.5) < 0.03
    assert set(small.tolist()) == {1, 2, 3, 4, 5, 6}
    assert u.min() >= 2.0 and u.max() < 4.0 and abs(u.mean() - 3.0) < 0.05
    assert g.min() >= 0 and g.max() < 100_000 and abs(g.mean() / 1e5 - 0.5) < 0.03


def test_agentset_get_reads_properties_and_unique_id_as_mesa():
    """``AgentSet.get`` is ``getattr`` per agent in Mesa: columns, ``unique_id``,
    properties; ``handle_missing="default"`` fills, an unknown option is a ValueError."""

    def build(lib):
        class Thing(lib.Agent):
            def __init__(self, model, v):
                super().__init__(model)
                self.v = v

            @property
            def double(self):
                return 2 * self.v

        class M(lib.Model):
            def __init__(self):
                super().__init__(seed=1)
                Thing.create_agents(self, 4, [1, 2, 3, 4])

        return M()

    real, ours = build(mesa), build(mesa_jax)
    for names in ("unique_id", "double", ["v", "double", "unique_id"]):
        assert ours.agents.get(names) == real.agents.get(names)
    assert (ours.agents.get("nope", handle_missing="default", default_value=-1)
            == real.agents.get("nope", handle_missing="default", default_value=-1) == [-1] * 4)
    for model in (real, ours):
        with pytest.raises(AttributeError):
            model.agents.get("nope")
        with pytest.raises(ValueError, match="Unknown handle_missing option"):
            model.agents.get("v", handle_missing="skip")


def test_collecting_twice_in_a_step_keeps_mesas_rows():
    """Mesa keys agent records by step (a second collect at the same step replaces the
    first) and appends model records: the same frames here."""
    out = []
    for base in (mesa, mesa_jax):
        class Counter(base.Agent):
            def __init__(self, model):
                super().__init__(model)
                self.count = 0

            def step(self):
                self.count += self.unique_id

        class Counting(base.Model):
            def __init__(self):
                super().__init__(seed=1)
                Counter.create_agents(self, 3)
                self.total = 0
                self.datacollector = base.DataCollector(
                    model_reporters={"total": "total"}, agent_reporters={"count": "count"})

            def step(self):
                self.agents.do("step")
                self.total = self.total + 1
                self.datacollector.collect(self)

        m = Counting()
        for _ in range(4):
            m.step()
            m.total = m.total + 10
            m.datacollector.collect(m)  # again, from the host, at the same step
        agents = m.datacollector.get_agent_vars_dataframe()
        if base is mesa:
            agents = agents.reset_index()
        out.append((list(m.datacollector.get_model_vars_dataframe()["total"]),
                    sorted(zip(*(list(agents[c]) for c in ("Step", "AgentID", "count"))))))
    assert out[1] == out[0]


def test_models_differing_only_in_what_the_step_rewrites_share_discovery(monkeypatch):
    """A model whose attributes the step rewrites start per seed (a heading, a mean) has
    the same shape as the first model built: it takes over what that model's discovery
    found (no abstract trace) and still steps as Mesa does. A parameter the step only
    reads (``drift``) is baked into the program: another value is discovered anew."""
    from mesa_jax import _compile

    discovered = []
    real_discover = _compile.CompiledStep._discover
    monkeypatch.setattr(_compile.CompiledStep, "_discover",
                        lambda self: discovered.append(self.model.drift) or real_discover(self))
    out = {}
    for base in (mesa, mesa_jax):
        class Walker(base.Agent):
            def __init__(self, model, x):
                super().__init__(model)
                self.x = x

            def step(self):
                self.x += self.model.drift

        class Drifting(base.Model):
            def __init__(self, seed, drift):
                super().__init__(seed=seed)
                self.drift = drift
                self.mean_x = self.random.random()  # another value per seed
                self.mode = 0
                Walker.create_agents(self, 5, x=[0.0, 1.0, 2.0, 3.0, 4.0])

            def step(self):
                self.agents.do("step")
                self.mean_x = sum(a.x for a in self.agents) / len(self.agents)
                if self.mean_x > 3.2:
                    self.mode = self.mode + 1

        runs = []
        for drift in (0.5, 0.25):
            for seed in range(4):
                m = Drifting(seed, drift)
                m.step()
                m.step()
                m.step()
                runs.append((m.mean_x, m.mode))
        out[base] = runs
    assert discovered == [0.5, 0.25]
    assert [mode for _, mode in out[mesa_jax]] == [mode for _, mode in out[mesa]]
    assert [x for x, _ in out[mesa_jax]] == pytest.approx([x for x, _ in out[mesa]])
    assert {mode for _, mode in out[mesa]} == {0, 1}  # both branches taken


def test_classes_appearing_in_another_order_share_a_program_and_keep_mesas_order(monkeypatch):
    """Two agent classes whose first agents appear in another order per seed (as Epstein's
    cops and citizens): the state lists tables by class name, so the second model takes
    over the first one's program (no discovery, no trace), while `agent_types`,
    `agents_by_type` and host iteration of `model.agents` keep Mesa's order (classes as
    they appeared) and the collected agent data, Enum names included, equal Mesa's."""
    from mesa_jax import _compile

    discovered = []
    real_discover = _compile.CompiledStep._discover
    monkeypatch.setattr(_compile.CompiledStep, "_discover",
                        lambda self: discovered.append(1) or real_discover(self))
    out = {}
    for base in (mesa, mesa_jax):
        class Mood(enum.Enum):
            CALM = 0
            ANGRY = 1

        class Bee(base.Agent):
            def __init__(self, model):
                super().__init__(model)
                self.mood = Mood.CALM
                self.level = 0

            def step(self):
                self.level += 1
                if self.level > 1:
                    self.mood = Mood.ANGRY

        class Ant(base.Agent):
            def __init__(self, model):
                super().__init__(model)
                self.mood = Mood.CALM
                self.level = 10

            def step(self):
                self.level -= 1

        class Hive(base.Model):
            def __init__(self, ants_first):
                super().__init__(seed=1)
                for cls in (Ant, Bee) if ants_first else (Bee, Ant):
                    cls.create_agents(self, 3)
                self.datacollector = base.DataCollector(
                    agent_reporters={"level": "level", "mood": "mood"})

            def step(self):
                self.agents.do("step")
                self.datacollector.collect(self)

        runs = []
        for ants_first in (True, False):
            m = Hive(ants_first)
            for _ in range(3):
                m.step()
            frame = m.datacollector.get_agent_vars_dataframe()
            if base is mesa:
                frame = frame.reset_index()
                moods = [x.name if isinstance(x, Mood) else x for x in frame["mood"]]
            else:
                moods = list(frame["mood"])
            runs.append(([c.__name__ for c in m.agent_types], [c.__name__ for c in m.agents_by_type],
                         [type(a).__name__ for a in m.agents],
                         sorted(zip(frame["Step"], frame["AgentID"], frame["level"], moods))))
            if base is mesa_jax and not ants_first:
                assert m._mj_compiled.trace_count == 0
        out[base] = runs
    assert out[mesa_jax] == out[mesa]
    assert len(discovered) == 1


def test_seeds_with_a_few_more_or_fewer_agents_share_the_first_ones_table_size():
    """Agents made with a random density: another seed's count differs a little, its
    table takes the size an earlier seed's was fitted to (when it fits), so it reuses
    that program (no trace); the totals still equal Mesa's."""
    out = {}
    for base in (mesa, mesa_jax):
        class Dot(base.Agent):
            def __init__(self, model):
                super().__init__(model)
                self.x = 0

            def step(self):
                self.x += self.unique_id

        class Dots(base.Model):
            def __init__(self, seed):
                super().__init__(seed=seed)
                for _ in range(70):
                    if self.random.random() < 0.7:
                        Dot(self)
                self.total = 0

            def step(self):
                self.agents.do("step")
                self.total = sum(a.x for a in self.agents)

        runs = []
        for seed in (1, 0, 2, 3, 5):  # 49 agents first (64 rows), then 43-46 (48 would do)
            m = Dots(seed)
            m.step()
            m.step()
            compiled = getattr(m, "_mj_compiled", None)
            runs.append((len(m.agents), m.total, compiled and (
                next(iter(m._mj_tables.values())).cap, compiled.trace_count)))
        out[base] = runs
    assert [r[:2] for r in out[mesa_jax]] == [r[:2] for r in out[mesa]]
    first_cap = out[mesa_jax][0][2][0]
    fits = [(n, cap, traces) for n, _, (cap, traces) in out[mesa_jax][1:] if n <= first_cap]
    assert len({n for n, _, _ in fits} | {out[mesa_jax][0][0]}) >= 2  # the counts differ
    assert all(cap == first_cap and traces == 0 for _, cap, traces in fits), out[mesa_jax]


def _batch_model(base):
    class Mood(enum.Enum):
        CALM = 0
        BUSY = 1

    class Worker(base.Agent):
        def __init__(self, model, rate):
            super().__init__(model)
            self.done = 0
            self.rate = rate
            self.mood = Mood.CALM

        def step(self):
            self.done += self.rate
            if self.done > 4:
                self.mood = Mood.BUSY

    class Shop(base.Model):
        def __init__(self, workers=2, rate=1, goal=1000):
            super().__init__(seed=1)
            Worker.create_agents(self, workers, rate=[rate + i for i in range(workers)])
            self.goal = goal
            self.total = 0
            self.datacollector = base.DataCollector(
                model_reporters={"total": "total"}, agent_reporters={"done": "done", "mood": "mood"})
            self.datacollector.collect(self)

        def step(self):
            self.agents.do("step")
            self.total = self.total + self.workers_done()
            self.datacollector.collect(self)
            if self.total >= self.goal:
                self.running = False

        def workers_done(self):
            return sum(a.done for a in self.agents)

    return Shop, Mood


@pytest.mark.parametrize("period", [-1, 1, 3])
def test_batch_run_gives_mesas_rows(period):
    """Mesa's runs, run ids, stopping rule (``running``, ``steps <= max_steps``),
    collection steps and rows (one per agent with agent reporters, Enum members as
    values), row for row."""
    out = []
    for base in (mesa, mesa_jax):
        shop, mood = _batch_model(base)
        rows = base.batch_run(shop, parameters={"workers": [2, 3], "rate": 1, "goal": [30, 1000]},
                              iterations=2, max_steps=6, data_collection_period=period,
                              display_progress=False)
        out.append([{k: (v.name if isinstance(v, mood) else v) for k, v in r.items()} for r in rows])
    assert out[1] == out[0]
    assert {r["Step"] for r in out[0]} >= {6} and any(r["Step"] < 6 and r["goal"] == 30 for r in out[0])


def test_batch_run_refuses_what_mesa_refuses():
    shop, _ = _batch_model(mesa_jax)
    with pytest.raises(ValueError, match="empty iterable"):
        mesa_jax.batch_run(shop, parameters={"workers": []}, display_progress=False)
