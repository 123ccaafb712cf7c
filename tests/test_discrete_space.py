"""mesa.discrete_space completeness: property layers, HexGrid, Grid2DMovingAgent and Mesa's
errors inside compiled steps, each checked against real Mesa, the eager run, or counting."""

import itertools
import math
import random
import warnings

import numpy as np
import pytest

import mesa
import mesa.discrete_space as MD

import mesa_jax
import mesa_jax.discrete_space as JD
from models.discrete_models import Field, HexModel, Packed, Seasons, Walk

warnings.filterwarnings("ignore", message="Random number generator not specified")


def _coords(cells):
    return [c.coordinate for c in cells]


# ------------------------------------------------------------------ hex grids
@pytest.mark.parametrize("dims,torus", [((5, 6), False), ((5, 6), True), ((4, 5), True),
                                        ((3, 3), True), ((1, 4), True), ((2, 2), True),
                                        ((6, 7), False)])
def test_hex_neighbourhoods_and_connections_equal_mesas(dims, torus):
    mg = MD.HexGrid(dims, torus=torus, random=random.Random(0))
    jg = JD.HexGrid(dims, torus=torus, random=random.Random(0))
    for coord in itertools.product(range(dims[0]), range(dims[1])):
        for radius in (1, 2, 3):
            for center in (False, True):
                want = _coords(mg[coord].get_neighborhood(radius, center))
                got = _coords(jg[coord].get_neighborhood(radius, center))
                assert set(got) == set(want) and len(got) == len(want), (coord, radius, center)
                assert got == want  # Mesa's order too (same draws from the same seed)
        assert {k: c.coordinate for k, c in mg[coord].connections.items()} == \
            {k: c.coordinate for k, c in jg[coord].connections.items()}


@pytest.mark.parametrize("torus", [False, True])
def test_hex_neighbourhood_agents_in_a_compiled_step(torus):
    m = HexModel(side=(6, 5), torus=torus, n=14, seed=3, radius=None)
    m.step()
    mg = MD.HexGrid((6, 5), torus=torus, random=random.Random(0))
    occupied = {a.cell.coordinate for a in m.agents}
    for a in m.agents:
        cell = mg[a.cell.coordinate]
        near = {c.coordinate for c in cell.get_neighborhood(radius=a.radius)}
        near2 = {c.coordinate for c in cell.get_neighborhood(radius=2, include_center=True)}
        assert a.near == len(near & occupied)
        assert a.near_static == len(near2 & occupied)


def test_hex_grid_validates_like_mesa():
    with pytest.raises(ValueError, match="Dimensions must be a list of positive integers."):
        JD.HexGrid((0, 3))
    with pytest.raises(ValueError, match="Torus must be a boolean."):
        JD.HexGrid((3, 3), torus=1)


# ------------------------------------------------------------ property layers
def _pair(dims=(4, 3)):
    return (MD.OrthogonalMooreGrid(dims, random=random.Random(1)),
            JD.OrthogonalMooreGrid(dims, random=random.Random(1)))


def test_property_layer_operations_equal_mesas():
    data = np.arange(12, dtype=float).reshape(4, 3)
    layers = []
    for space in (MD, JD):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lay = space.PropertyLayer.from_data("v", data)
        lay.set_cells(-1.0, condition=lambda x: x > 9)
        lay.modify_cells(np.multiply, 2.0)
        lay.modify_cells(lambda x: x + 0.5, condition=lambda x: x < 6)
        lay.data = lay.data + 1  # the setter copies in place
        layers.append(lay)
    mine, theirs = layers[1], layers[0]
    assert np.array_equal(mine.data, theirs.data) and mine.data.dtype == theirs.data.dtype
    cond = lambda d: d < -5  # noqa: E731
    assert mine.select_cells(cond) == theirs.select_cells(cond)
    assert np.array_equal(mine.select_cells(cond, return_list=False), theirs.select_cells(cond, return_list=False))
    assert mine.aggregate(np.sum) == theirs.aggregate(np.sum)
    # an int layer modified by a float function becomes float, as numpy makes it in Mesa
    for space in (MD, JD):
        lay = space.PropertyLayer("i", (3, 3), default_value=1, dtype=int)
        lay.modify_cells(lambda x: x * 1.5)
        layers.append(lay)
    assert layers[-1].data.dtype == layers[-2].data.dtype
    assert np.array_equal(layers[-1].data, layers[-2].data)


def test_property_layer_errors_and_warnings_equal_mesas():
    for space in (MD, JD):
        with pytest.warns(UserWarning, match=r"Default value 1 \(int\) might not be best suitable with dtype=float."):
            space.PropertyLayer("w", (2, 2), default_value=1, dtype=float)
        lay = space.PropertyLayer("x", (2, 2))
        with pytest.raises(ValueError, match="This ufunc requires an additional input value."):
            lay.modify_cells(np.add)
    outcomes = []
    for grid, space in zip(_pair(), (MD, JD)):
        got = []

        def attempt(fn):
            try:
                fn()
                got.append("ok")
            except Exception as e:  # noqa: BLE001
                got.append((type(e).__name__, str(e)))

        grid.create_property_layer("sugar", 2.0)
        attempt(lambda: grid.create_property_layer("sugar"))
        attempt(lambda: grid.create_property_layer("empty"))
        attempt(lambda: grid.create_property_layer("capacity"))
        attempt(lambda: grid.create_property_layer("coordinate"))
        attempt(lambda: grid.add_property_layer(space.PropertyLayer("y", (3, 4))))
        attempt(lambda: grid.remove_property_layer("nothing"))
        attempt(lambda: grid[(0, 0)].nothing)
        attempt(lambda: grid.nothing)
        attempt(lambda: setattr(grid, "sugar", 1))
        attempt(lambda: grid.sugar.name)
        grid.remove_property_layer("sugar")
        attempt(lambda: grid[(0, 0)].sugar)
        outcomes.append(got)
    assert outcomes[0] == outcomes[1]


def test_cell_property_access_and_grid_helpers_equal_mesas():
    results = []
    for grid, space in zip(_pair((5, 4)), (MD, JD)):
        sugar = grid.create_property_layer("sugar", 1.0)
        grid.add_property_layer(space.PropertyLayer.from_data("altitude", np.arange(20.0).reshape(5, 4)))
        grid[(1, 2)].sugar = 7.5
        grid[(3, 3)].sugar += 2
        grid.set_property("sugar", 4.0, condition=lambda v: v == 1.0)
        grid.modify_properties("altitude", np.add, 1.0, condition=lambda v: v > 10)
        mask = grid.get_neighborhood_mask((2, 2), include_center=False, radius=1)
        picked = grid.select_cells(conditions={"altitude": lambda h: h > 5},
                                   extreme_values={"sugar": "lowest"}, masks=[mask])
        top = grid.select_cells(extreme_values={"altitude": "highest"}, return_list=False)
        results.append((sugar.data.tolist(), grid.altitude.data.tolist(), float(grid[(1, 2)].sugar),
                        mask.tolist(), [tuple(map(int, p)) for p in picked], top.tolist(),
                        bool(grid[(0, 0)].empty), grid.empty.data.dtype))
    assert results[0] == results[1]


# --------------------------------------------------- layers in compiled steps
def _total(model):
    return float(model.grid.sugar.data.sum()) + sum(a.sugar for a in model.agents)


def test_harvest_conserves_sugar_and_empties_visited_cells():
    m = Field(n=12, side=5, method="harvest", seed=2)
    start = _total(m)
    cells = {a.cell.coordinate for a in m.agents}
    before = m.grid.sugar.data.copy()
    m.step()
    after = m.grid.sugar.data
    assert isinstance(after, np.ndarray) and after.dtype == np.float64
    assert all(after[c] == 0 for c in cells)
    assert all(after[c] == before[c] for c in np.ndindex(5, 5) if c not in cells)
    assert _total(m) == pytest.approx(start)  # one agent per cell: nothing counted twice
    assert m._mj_compiled.trace_count == 1


def test_scatter_adds_from_many_agents_on_one_cell():
    m = Field(n=9, side=5, method="deposit", seed=1, stacked=True)
    counts = {}
    for a in m.agents:
        counts[a.cell.coordinate] = counts.get(a.cell.coordinate, 0) + 1
    sugar0, spice0 = m.grid.sugar.data.copy(), m.grid.spice.data.copy()
    for _ in range(3):
        m.step()
    for c in np.ndindex(5, 5):
        k = counts.get(c, 0)
        assert m.grid.sugar.data[c] == sugar0[c] + 3 * k
        assert m.grid.spice.data[c] == spice0[c] - 6 * k
    assert m.grid.spice.data.dtype == spice0.dtype
    assert m._mj_compiled.trace_count == 1


def test_writes_from_a_loop_over_the_neighbourhood_add_up():
    m = Field(n=7, side=5, method="spread", seed=3)
    before = m.grid.sugar.data.copy()
    m.step()
    expect = before.copy()
    for a in m.agents:
        x, y = a.cell.coordinate
        for dx, dy in itertools.product((-1, 0, 1), repeat=2):
            if (dx, dy) != (0, 0):
                expect[(x + dx) % 5, (y + dy) % 5] += 0.125
    assert np.allclose(m.grid.sugar.data, expect)


def test_plain_assignment_keeps_one_writer_and_everyone_read_the_start_value():
    m = Field(n=9, side=5, method="harvest", seed=4, stacked=True)
    before = m.grid.sugar.data.copy()
    m.step()
    for a in m.agents:
        assert a.sugar == before[a.cell.coordinate]
        assert m.grid.sugar.data[a.cell.coordinate] == 0


def test_an_agent_reads_its_own_cell_writes():
    m = Field(n=10, side=5, method="nibble", seed=5)
    before = m.grid.sugar.data.copy()
    m.step()
    for a in m.agents:
        assert a.seen == before[a.cell.coordinate] - 1


def test_compiled_run_equals_the_eager_run_when_agents_do_not_collide():
    def run():
        m = Field(n=10, side=5, method="harvest", grow=0.25, seed=7)
        for _ in range(4):
            m.step()
        return m.grid.sugar.data.copy(), sorted((a.unique_id, a.sugar) for a in m.agents)

    compiled = run()
    mesa_jax.set_jit(False)
    try:
        eager = run()
    finally:
        mesa_jax.set_jit(True)
    assert np.allclose(compiled[0], eager[0])
    assert [u for u, _ in compiled[1]] == [u for u, _ in eager[1]]
    assert np.allclose([s for _, s in compiled[1]], [s for _, s in eager[1]])


@pytest.mark.parametrize("mode", ["parallel", "batched:3"])
def test_moves_with_claims_and_batches_carry_the_layers(mode):
    mesa_jax.set_activation(mode)
    try:
        m = Field(n=12, side=5, method="wander_and_eat", capacity=1, seed=6)
        start = _total(m)
        for _ in range(3):
            m.step()
            cells = [a.cell.coordinate for a in m.agents]
            assert len(set(cells)) == len(cells)
            assert all(m.grid.sugar.data[c] == 0 for c in cells)
            assert _total(m) == pytest.approx(start)
    finally:
        mesa_jax.set_activation("parallel")


def test_model_level_layer_operations_equal_the_eager_run():
    def run():
        m = Seasons(seed=1)
        for _ in range(5):
            m.step()
        return m.heat.data.copy(), m.total

    compiled = run()
    mesa_jax.set_jit(False)
    try:
        eager = run()
    finally:
        mesa_jax.set_jit(True)
    assert np.allclose(compiled[0], eager[0])
    assert compiled[1] == pytest.approx(eager[1])


def test_a_second_model_of_the_same_shape_reuses_the_program_with_its_own_layers():
    first = Field(n=12, side=5, method="harvest", seed=2)
    first.step()
    m = Field(n=12, side=5, method="harvest", seed=9)
    m.grid.sugar.data[:] = 2.0
    cells = {a.cell.coordinate for a in m.agents}
    m.step()
    assert m._mj_compiled.trace_count == 0
    assert all(m.grid.sugar.data[c] == (0.0 if c in cells else 2.0) for c in np.ndindex(5, 5))
    assert all(a.sugar == 2.0 for a in m.agents)


def test_host_edits_between_compiled_steps_are_seen():
    m = Field(n=4, side=5, method="harvest", seed=8)
    m.step()
    m.grid.sugar.data[:] = 3.0
    m.grid[(0, 0)].sugar = 9.0
    m.grid.sugar.modify_cells(np.add, 1.0)
    carried = sum(a.sugar for a in m.agents)
    m.step()
    occupied = {a.cell.coordinate for a in m.agents}
    expect = sum(10.0 if c == (0, 0) else 4.0 for c in occupied)
    assert sum(a.sugar for a in m.agents) == pytest.approx(carried + expect)


def test_eager_steps_after_compiled_ones_keep_mesas_dtype_and_writable_data():
    m = Field(n=4, side=5, method="deposit", seed=8)
    m.step()
    mesa_jax.set_jit(False)
    try:
        m.step()
    finally:
        mesa_jax.set_jit(True)
    assert m.grid.sugar.data.dtype == np.float64 and m.grid.spice.data.dtype == np.int64
    m.grid.sugar.data[0, 0] = 1.5
    m.grid[(0, 1)].spice = 3
    assert m.grid[(0, 0)].sugar == 1.5 and m.grid.spice.data[0, 1] == 3
    m.step()


def test_unknown_layer_in_a_step_is_mesas_attribute_error():
    m = Field(n=3, side=5, method="unknown", seed=1)
    with pytest.raises(AttributeError, match="'GridCell' object has no attribute 'nectar'"):
        m.step()


# --------------------------------------------------------- Grid2DMovingAgent
class _MesaWalker(MD.Grid2DMovingAgent):
    pass


def _mesa_walk(direction, torus, distances, steps):
    model = mesa.Model(seed=1)
    grid = MD.OrthogonalMooreGrid((5, 4), torus=torus, random=model.random)
    walkers = []
    for i, c in enumerate(list(grid.all_cells)[::3]):
        w = _MesaWalker(model)
        w.cell = c
        walkers.append((w, distances(i)))
    for _ in range(steps):
        for w, d in walkers:
            w.move(direction, distance=d)
    return [w.cell.coordinate for w, _ in walkers]


@pytest.mark.parametrize("direction", ["north", "SE", "w", "upright"])
def test_moves_by_direction_equal_mesas(direction):
    want = _mesa_walk(direction.lower(), True, lambda i: 1 + i % 3, 2)
    m = Walk(direction=direction, torus=True)
    m.step()
    m.step()
    assert [a.cell.coordinate for a in m.agents] == want
    want = _mesa_walk(direction.lower(), True, lambda i: 2, 1)
    m = Walk(direction=direction, torus=True, fixed=2)
    m.step()
    assert [a.cell.coordinate for a in m.agents] == want


def test_move_errors_equal_mesas():
    m = Walk(direction="north", torus=False)
    before = [a.cell.coordinate for a in m.agents]
    with pytest.raises(ValueError, match=r"No cell in direction \(-1, 0\)"):
        m.step()  # agents on the top row have no cell to the north
    assert [a.cell.coordinate for a in m.agents] == before
    with pytest.raises(ValueError, match="Invalid direction: sideways"):
        Walk(direction="sideways").step()
    m = Walk(direction="ne", grid=JD.OrthogonalVonNeumannGrid, torus=True)
    with pytest.raises(ValueError, match=r"No cell in direction \(-1, 1\)"):
        m.step()
    grid = MD.OrthogonalVonNeumannGrid((3, 3), random=random.Random(0))
    w = _MesaWalker(mesa.Model(seed=1))
    w.cell = grid[(1, 1)]
    with pytest.raises(ValueError, match=r"No cell in direction \(-1, 1\)"):
        w.move("ne")


# ------------------------------------------------------ errors inside steps
def test_random_empty_cell_of_a_full_grid_is_an_index_error_after_the_step():
    # (Mesa's Grid loops forever here; its DiscreteSpace raises this IndexError)
    m = Packed(method="jump", seed=1)
    before = [a.cell.coordinate for a in m.agents]
    with pytest.raises(IndexError, match="Cannot choose from an empty sequence"):
        m.step()
    assert [a.cell.coordinate for a in m.agents] == before
    with pytest.raises(IndexError, match="Cannot choose from an empty sequence"):
        m.grid.select_random_empty_cell()


def test_traced_radius_zero_is_mesas_value_error_after_the_step():
    m = Packed(method="look", seed=1)
    with pytest.raises(ValueError, match="radius must be larger than one"):
        m.step()
    assert all(a.radius == 0 for a in m.agents)
    for a in m.agents:
        a.radius = 1
    m.step()
    assert sorted(a.radius for a in m.agents) == sorted([3] * 4 + [5] * 4 + [8])


def test_discrete_space_submodules_redirect_to_mesa_jax():
    from mesa_jax.redirect import redirect

    with redirect():
        from mesa.discrete_space import HexGrid
        from mesa.discrete_space.cell_agent import Grid2DMovingAgent
        from mesa.discrete_space.property_layer import PropertyLayer

    assert PropertyLayer is JD.PropertyLayer
    assert HexGrid is JD.HexGrid
    assert Grid2DMovingAgent is JD.Grid2DMovingAgent


# ------------------------------------------- is_full and select_random_agent
def _crowd(base, space):
    """Agents stacked two to a cell on part of a capacity-2 grid; each counts the full cells
    around it and picks a random agent of its neighbourhood (agents do not move)."""

    class Looker(space.CellAgent):
        def __init__(self, model, cell):
            super().__init__(model)
            self.cell = cell
            self.full_here = False
            self.full_around = 0
            self.picked = 0

        def step(self):
            self.full_here = self.cell.is_full
            self.full_around = sum(1 for c in self.cell.neighborhood if c.is_full)
            self.picked = self.cell.get_neighborhood(include_center=True).select_random_agent().unique_id

    class Crowd(base.Model):
        def __init__(self, seed):
            super().__init__(seed=seed)
            self.grid = space.OrthogonalMooreGrid((4, 4), torus=True, capacity=2, random=self.random)
            for k, cell in enumerate(self.grid.all_cells):
                for _ in range(2 if k % 3 == 0 else 1):
                    Looker(self, cell)

        def step(self):
            self.agents.do("step")

    return Crowd


def test_is_full_and_select_random_agent_agree_with_mesa():
    """`cell.is_full` counts equal Mesa's exactly (eager and compiled); the agent
    `select_random_agent` picks is always one of the neighbourhood's, and over 200 steps
    every agent of a neighbourhood is picked about equally often: chi-square over each
    looker's picks, mean statistic within 3 standard errors of its degrees of freedom."""
    runs = {}
    for name, base, space, jit in (("mesa", mesa, MD, None), ("eager", mesa_jax, JD, False),
                                   ("compiled", mesa_jax, JD, True)):
        if jit is not None:
            mesa_jax.set_jit(jit)
        try:
            m = _crowd(base, space)(seed=3)
            picks = {a.unique_id: [] for a in m.agents}
            for _ in range(200 if name == "compiled" else 20):
                m.step()
                for a in m.agents:
                    picks[a.unique_id].append(int(a.picked))
            near = {a.unique_id: {b.unique_id for b in a.cell.get_neighborhood(include_center=True).agents}
                    for a in m.agents}
            runs[name] = ({a.unique_id: (bool(a.full_here), int(a.full_around)) for a in m.agents},
                          picks, near)
        finally:
            mesa_jax.set_jit(True)
    assert runs["eager"][0] == runs["mesa"][0] and runs["compiled"][0] == runs["mesa"][0]
    assert sum(full for full, _ in runs["mesa"][0].values()) == 12  # the test can see a difference
    stats, dofs = [], []
    for name in runs:
        _, picks, near = runs[name]
        for uid, got in picks.items():
            assert set(got) <= near[uid], (name, uid)
            if name == "compiled":
                counts = np.array([got.count(v) for v in sorted(near[uid])], float)
                expected = len(got) / len(near[uid])
                stats.append(float(((counts - expected) ** 2 / expected).sum()))
                dofs.append(len(near[uid]) - 1)
    mean_dof = float(np.mean(dofs))
    assert abs(np.mean(stats) - mean_dof) < 3 * math.sqrt(2 * mean_dof / len(stats))
