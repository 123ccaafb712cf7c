"""Agents created inside compiled steps (births), against real Mesa."""

import numpy as np
import pytest

import mesa
import mesa.discrete_space as mesa_ds
import mesa_jax
import mesa_jax.discrete_space as jax_ds
from _stats import ks_2samp
from mesa_jax import UnsupportedError


def _dish(base):
    class Germ(base.Agent):
        def __init__(self, model, energy):
            super().__init__(model)
            self.energy = energy
            self.age = 0

        def step(self):
            self.age += 1
            self.energy -= 1 if self.age % 2 else 0
            if self.energy >= 3:
                self.energy = self.energy - 1
                Germ(self.model, self.energy)
            elif self.energy <= 0:
                self.remove()

    class Dish(base.Model):
        def __init__(self, n=10):
            super().__init__(seed=1)
            for i in range(n):
                Germ(self, 3 + i % 7)
            self.count = n

        def step(self):
            self.agents.do("step")
            self.count = len(self.agents)
            if self.steps == 2:
                Germ(self, 9)  # a birth in the model's own step

    return Dish


def test_births_and_deaths_match_mesa_step_for_step():
    """Deterministic births (in agents' steps and in the model's), deaths and the table
    growing (grow and replay): the same agents (energy, age) and counts as Mesa for 8
    steps, and as many unique ids handed out (newborns are numbered in their parents' row
    order, Mesa's in activation order: which child gets which id may differ)."""
    runs = []
    for base in (mesa, mesa_jax):
        m = _dish(base)()
        seen = []
        for _ in range(8):
            m.step()
            ids = [a.unique_id for a in m.agents]
            assert len(set(ids)) == len(ids)
            seen.append((m.count, max(ids), sorted((a.energy, a.age) for a in m.agents)))
        runs.append(seen)
        if base is mesa_jax:
            assert m._mj_compiled.replays >= 1  # the table grew for the newborns
    assert runs[1] == runs[0]
    assert max(c for c, _, _ in runs[0]) > 3 * 10


def test_host_created_agents_between_compiled_births_match_mesa():
    """Agents created on the host between compiled steps with births take free rows (the
    table does not keep doubling); old agent objects stay themselves."""
    runs = []
    for base in (mesa, mesa_jax):
        m = _dish(base)()
        for _ in range(4):
            m.step()
        first = next(iter(m.agents))
        fid = first.unique_id
        seen = []
        for _ in range(3):
            for _ in range(5):
                type(first)(m, 6)
            m.step()
            ids = [a.unique_id for a in m.agents]
            assert len(set(ids)) == len(ids)
            seen.append((len(m.agents), sorted((a.energy, a.age) for a in m.agents)))
        assert first.unique_id == fid
        assert (first in set(m.agents)) == (fid in ids)
        if base is mesa_jax and fid not in ids:
            try:  # its last values, or (its row reused by a newborn) an error: never another's
                first.energy
            except mesa_jax.MesaJaxError as exc:
                assert "was removed and its row now holds a newer agent" in str(exc)
        runs.append(seen)
        if base is mesa_jax:
            assert max(t.cap for t in m._mj_tables.values()) <= 4 * max(len(m.agents), 64)
    assert runs[1] == runs[0]


def _farm(base, ds):
    class Egg(base.Agent):
        def __init__(self, model, size):
            super().__init__(model)
            self.size = size

        def step(self):
            self.size += 1

    class Hen(base.Agent):
        def __init__(self, model, k):
            super().__init__(model)
            self.k = k

        def step(self):
            for j in range(3):
                if j < self.k:
                    Egg(self.model, 10 * self.k + j)

    class Plant(ds.CellAgent):
        def __init__(self, model, cell, age=0):
            super().__init__(model)
            self.cell = cell
            self.age = age

        def step(self):
            self.age += 1
            if self.age == 2:
                for c in self.cell.neighborhood:  # a vectorised loop over the neighbours
                    if (c.coordinate[0] + c.coordinate[1]) % 3 == 0:
                        Plant(self.model, c)

    class Farm(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = ds.OrthogonalVonNeumannGrid((6, 6), torus=True, random=self.random)
            for k in range(4):
                Hen(self, k)
            Egg(self, 0)
            Plant(self, self.grid[(2, 2)])
            Plant(self, self.grid[(4, 1)], age=1)

        def step(self):
            self.agents_by_type[Hen].do("step")
            self.agents_by_type[Egg].do("step")
            self.agents_by_type[Plant].do("step")
            for egg in list(self.agents_by_type[Egg]):
                if egg.size > 25:
                    egg.remove()

    return Farm, Egg, Plant


def test_births_of_another_class_and_in_loops_match_mesa():
    """Hens lay eggs (another class) in an unrolled loop under a traced condition; plants
    seed neighbouring cells in a vectorised loop; eggs are removed at model level: the
    same eggs and plants as Mesa, step for step."""
    runs = []
    for base, ds in ((mesa, mesa_ds), (mesa_jax, jax_ds)):
        farm, egg, plant = _farm(base, ds)
        m = farm()
        seen = []
        for _ in range(5):
            m.step()
            seen.append((sorted(a.size for a in m.agents_by_type[egg]),
                         sorted((a.cell.coordinate, a.age) for a in m.agents_by_type[plant])))
        runs.append(seen)
    assert runs[1] == runs[0]
    assert len(runs[0][-1][1]) > 2 and len(runs[0][-1][0]) > 5


def _pond(base, cs):
    class Fish(cs.ContinuousSpaceAgent):
        def __init__(self, model, space, position, energy):
            super().__init__(space, model)
            self.position = position
            self.energy = energy

        def step(self):
            self.position += np.array([0.5, 0.25])
            self.energy -= 1
            if self.energy == 2:
                Fish(self.model, self.space, self.position + 1.0, 4)
            if self.energy < 0:
                self.remove()

    class Pond(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.space = cs.ContinuousSpace([[0, 10], [0, 10]], torus=True, random=self.random,
                                            n_agents=4)
            for i in range(3):
                Fish(self, self.space, np.array([i * 2.0, 1.0]), 3 + i)
            self.near = 0

        def step(self):
            self.agents.do("step")
            a = min(self.agents, key=lambda x: x.energy * 100 + x.position[0])
            neighbors, _ = a.get_neighbors_in_radius(radius=3)
            self.near = len(neighbors)

    return Pond


def test_births_in_a_continuous_space_match_mesa():
    """Newborns placed in an experimental ContinuousSpace are found by radius queries;
    the host lists agents in creation order although births reuse rows."""
    import mesa.experimental.continuous_space as mesa_cs
    import mesa_jax.experimental.continuous_space as jax_cs

    runs = []
    for base, cs in ((mesa, mesa_cs), (mesa_jax, jax_cs)):
        m = _pond(base, cs)()
        seen = []
        for _ in range(6):
            m.step()
            seen.append((m.near, [a.unique_id for a in m.agents],
                         sorted((round(float(a.position[0]), 3), round(float(a.position[1]), 3),
                                 a.energy) for a in m.agents)))
        runs.append(seen)
    assert runs[1] == runs[0]


def _field(base, ds):
    class Critter(ds.CellAgent):
        def __init__(self, model, energy, cell):
            super().__init__(model)
            self.energy = energy
            self.cell = cell

        def step(self):
            self.cell = self.cell.neighborhood.select_random_cell()
            self.energy -= 0.5
            if self.energy < 0:
                self.remove()
            elif self.random.random() < 0.25:
                Critter(self.model, 3.0, self.cell)

    class Field(base.Model):
        def __init__(self, seed=None):
            super().__init__(seed=seed)
            self.grid = ds.OrthogonalMooreGrid((10, 10), torus=True, random=self.random)
            for cell in self.random.sample(list(self.grid.all_cells), 20):
                Critter(self, 3.0, cell)
            self.crowd = 0

        def step(self):
            self.agents.shuffle_do("step")
            self.crowd = max(len(c.agents) for c in self.grid.all_cells)

    return Field


def _field_runs(base, ds, seeds=40, steps=10):
    field = _field(base, ds)
    out = []
    for seed in range(seeds):
        m = field(seed=seed)
        for _ in range(steps):
            m.step()
        out.append((len(m.agents), sum(a.energy for a in m.agents), m.crowd,
                    len({a.unique_id for a in m.agents}) == len(m.agents)))
    return np.array(out, float)


def test_random_births_on_a_grid_agree_with_mesa():
    """Random moves, births into the parent's cell and deaths on a torus grid, 40 seeds x
    10 steps: population, total energy and the most crowded cell agree with Mesa
    (two-sample KS, p > 0.01 each; births and deaths do not interact, so the two
    activation orders give the same law); unique ids stay unique."""
    theirs = _field_runs(mesa, mesa_ds)
    ours = _field_runs(mesa_jax, jax_ds)
    assert ours[:, 3].all()
    assert theirs[:, 0].mean() > 40  # the population grows: births are exercised
    for k in range(3):
        _, p = ks_2samp(ours[:, k], theirs[:, k])
        assert p > 0.01, (k, p, ours[:, k].mean(), theirs[:, k].mean())


def _burrow(base, space):
    class Bug(base.Agent):
        def __init__(self, model, energy=3):
            super().__init__(model)
            self.energy = energy

        def step(self):
            self.energy -= 1
            if self.energy == 1:
                child = Bug(self.model, 4)
                self.model.grid.place_agent(child, self.pos)  # a newborn used after __init__
                child.energy += 1
            if self.energy < 0:
                self.model.grid.remove_agent(self)
                self.remove()

    class Burrow(base.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = space.MultiGrid(5, 5, torus=True)
            for i in range(4):
                self.grid.place_agent(Bug(self, 3 + i), (i, i))

        def step(self):
            self.agents.shuffle_do("step")
            if self.steps == 3:
                for bug in Bug.create_agents(self, 2, energy=[2, 5]):
                    self.grid.place_agent(bug, (4, 4))

    return Burrow


def test_newborns_placed_and_edited_after_creation_match_mesa():
    """A newborn placed on a legacy MultiGrid and edited by its parent after `__init__`,
    removals, and `create_agents` in the model's step: the same (energy, pos) multiset
    and cell contents as Mesa, step for step."""
    import mesa.space
    import mesa_jax.space

    runs = []
    for base, space in ((mesa, mesa.space), (mesa_jax, mesa_jax.space)):
        m = _burrow(base, space)()
        seen = []
        for _ in range(7):
            m.step()
            seen.append((sorted((a.energy, a.pos) for a in m.agents),
                         [len(m.grid.get_cell_list_contents([(i, i)])) for i in range(5)]))
        runs.append(seen)
    assert runs[1] == runs[0]
    assert max(len(a) for a, _ in runs[0]) > 6


def test_births_under_batched_activation():
    """Batched activation runs the agents in random batches (a loop): births in each
    batch get rows and ids, and the grid model keeps agreeing with Mesa's means."""
    mesa_jax.set_activation("batched:4")
    try:
        ours = _field_runs(mesa_jax, jax_ds, seeds=20)
    finally:
        mesa_jax.set_activation("parallel")
    theirs = _field_runs(mesa, mesa_ds, seeds=20)
    assert ours[:, 3].all()
    _, p = ks_2samp(ours[:, 0], theirs[:, 0])
    assert p > 0.01, (ours[:, 0].mean(), theirs[:, 0].mean())


def _unknown_class_model():
    class Seed(mesa_jax.Agent):
        pass

    class Tree(mesa_jax.Agent):
        def step(self):
            Seed(self.model)

    class M(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            Tree.create_agents(self, 2)

        def step(self):
            self.agents.do("step")

    return M()


def test_creating_a_class_without_agents_is_an_error():
    with pytest.raises(UnsupportedError) as err:
        _unknown_class_model().step()
    assert "no `Seed` agent existed before the step" in str(err.value)


def _crowded_model():
    class Settler(jax_ds.CellAgent):
        def __init__(self, model, cell):
            super().__init__(model)
            self.cell = cell

        def step(self):
            Settler(self.model, self.cell.neighborhood.select_random_cell())

    class M(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = jax_ds.OrthogonalMooreGrid((4, 4), capacity=1, random=self.random)
            Settler(self, self.grid.all_cells.cells[0])

        def step(self):
            self.agents.do("step")

    return M()


def test_births_into_capacity_limited_cells_are_refused():
    with pytest.raises(UnsupportedError) as err:
        _crowded_model().step()
    msg = str(err.value)
    assert "creating a `Settler` agent inside a compiled step: it lives in a space with a " \
           "capacity per cell" in msg
    assert f"{__file__}:" in msg


def test_births_in_a_scanned_chunk_match_single_steps():
    """`run_for(n)` (one scanned program for n steps) with births, deaths and growth ends
    where n single steps and Mesa end."""
    def state(m):
        return len(m.agents), sorted((a.energy, a.age) for a in m.agents), max(a.unique_id for a in m.agents)

    theirs = _dish(mesa)()
    for _ in range(8):
        theirs.step()
    ours = _dish(mesa_jax)()
    ours.run_for(8)
    assert state(ours) == state(theirs)


def _collecting_dish(base):
    dish = _dish(base)

    class CollectingDish(dish):
        def __init__(self):
            super().__init__()
            self.datacollector = base.DataCollector(
                model_reporters={"n": lambda m: len(m.agents)},
                agent_reporters={"E": "energy", "A": lambda a: a.age})
            self.datacollector.collect(self)

        def step(self):
            super().step()
            self.datacollector.collect(self)

    return CollectingDish()


def test_data_collected_inside_steps_with_births_matches_mesa():
    """The DataCollector called inside compiled steps that create and remove agents:
    the same model series and the same (step, energy, age) agent rows as Mesa."""
    frames = []
    for base in (mesa, mesa_jax):
        m = _collecting_dish(base)
        for _ in range(6):
            m.step()
        agents = m.datacollector.get_agent_vars_dataframe()
        series = m.datacollector.get_model_vars_dataframe()["n"]
        if base is mesa:
            agents = agents.reset_index()
            rows = sorted(zip(agents["Step"], agents["E"], agents["A"]))
        else:
            rows = sorted(zip(agents["Step"].to_list(), agents["E"].to_list(), agents["A"].to_list()))
        frames.append((list(series), rows))
    assert frames[1] == frames[0]
    assert max(frames[0][0]) > 3 * frames[0][0][0]
