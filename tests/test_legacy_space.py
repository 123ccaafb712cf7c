"""Legacy ``mesa_jax.space`` against Mesa's ``mesa.space``: queries, errors, compiled steps."""

import warnings

import networkx as nx
import numpy as np
import pytest

import mesa
import mesa_jax
from mesa_jax import space as js


class MesaAgent(mesa.Agent):
    pass


class JaxAgent(mesa_jax.Agent):
    pass


def _pair(seed=1):
    return mesa.Model(seed=seed), mesa_jax.Model(seed=seed)


def _ids(agents):
    return [a.unique_id for a in agents]


def _content_ids(c):
    if c is None:
        return None
    if isinstance(c, list):
        return _ids(c)
    return c.unique_id


def _raises_same(fm, fj):
    """Both calls raise the same exception type with the same message."""
    with pytest.raises(Exception) as em:
        fm()
    with pytest.raises(Exception) as ej:
        fj()
    assert type(em.value) is type(ej.value), (em.value, ej.value)
    assert str(em.value) == str(ej.value)


def _placed_pair(kind, width, height, torus, n, seed=5):
    """The same agents at the same positions on a Mesa grid and on ours."""
    mm, jm = _pair()
    mg = getattr(mesa.space, kind)(width, height, torus)
    jg = getattr(js, kind)(width, height, torus)
    ma = [MesaAgent(mm) for _ in range(n)]
    ja = [JaxAgent(jm) for _ in range(n)]
    rng = np.random.default_rng(seed)
    cells = [(x, y) for x in range(width) for y in range(height)]
    if "Single" in kind:
        picks = [cells[i] for i in rng.choice(len(cells), n, replace=False)]
    else:
        picks = [cells[i] for i in rng.integers(0, len(cells), n)]
    for a, b, p in zip(ma, ja, picks):
        mg.place_agent(a, p)
        jg.place_agent(b, p)
    return mm, jm, mg, jg, ma, ja


# ------------------------------------------------------------------ grids
@pytest.mark.parametrize("kind", ["SingleGrid", "MultiGrid"])
@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("size", [(5, 4), (3, 3)])
def test_grid_queries_match_mesa(kind, torus, size):
    w, h = size
    n = 6 if "Single" in kind else 14
    _, _, mg, jg, ma, ja = _placed_pair(kind, w, h, torus, n)
    for x in range(w):
        for y in range(h):
            pos = (x, y)
            for moore in (True, False):
                for inc in (True, False):
                    for r in (1, 2, 3):
                        assert jg.get_neighborhood(pos, moore, inc, r) == tuple(
                            mg.get_neighborhood(pos, moore, inc, r))
                        assert list(jg.iter_neighborhood(pos, moore, inc, r)) == list(
                            mg.iter_neighborhood(pos, moore, inc, r))
                        assert _ids(jg.get_neighbors(pos, moore, inc, r)) == _ids(
                            mg.get_neighbors(pos, moore, inc, r))
                        assert _ids(jg.iter_neighbors(pos, moore, inc, r)) == _ids(
                            mg.iter_neighbors(pos, moore, inc, r))
            assert jg.is_cell_empty(pos) == mg.is_cell_empty(pos)
            assert _ids(jg.get_cell_list_contents(pos)) == _ids(mg.get_cell_list_contents(pos))
            assert _content_ids(jg[pos]) == _content_ids(mg[pos])
            assert _content_ids(jg[x, y]) == _content_ids(mg[x, y])
    cells = [(0, 0), (1, 2), (2, 1), (0, 2)]
    assert _ids(jg.get_cell_list_contents(cells)) == _ids(mg.get_cell_list_contents(cells))
    assert [_content_ids(c) for c in jg[cells]] == [_content_ids(c) for c in mg[cells]]
    assert [_content_ids(c) for c in jg[1]] == [_content_ids(c) for c in mg[1]]
    assert [_content_ids(c) for c in jg[1, :]] == [_content_ids(c) for c in mg[1, :]]
    assert [_content_ids(c) for c in jg[:, 1]] == [_content_ids(c) for c in mg[:, 1]]
    assert [_content_ids(c) for c in jg[:, :]] == [_content_ids(c) for c in mg[:, :]]
    assert [_content_ids(c) for c in jg] == [_content_ids(c) for c in mg]
    assert [(_content_ids(c), p) for c, p in jg.coord_iter()] == [
        (_content_ids(c), p) for c, p in mg.coord_iter()]
    assert jg.empties == mg.empties
    assert jg.exists_empty_cells() == mg.exists_empty_cells()
    assert sorted(_ids(jg.agents)) == sorted(_ids(mg.agents))
    for pos in [(-1, 0), (w, 0), (0, h), (w + 2, -3), (1, 1)]:
        assert jg.out_of_bounds(pos) == mg.out_of_bounds(pos)
        if torus or not mg.out_of_bounds(pos):
            assert jg.torus_adj(pos) == mg.torus_adj(pos)
    if "Single" in kind:
        assert (jg.empty_mask == mg.empty_mask).all()
    # removing keeps contents and empties in step
    for a, b in list(zip(ma, ja))[::2]:
        mg.remove_agent(a)
        jg.remove_agent(b)
        assert b.pos is None
    assert jg.empties == mg.empties
    assert [(_content_ids(c), p) for c, p in jg.coord_iter()] == [
        (_content_ids(c), p) for c, p in mg.coord_iter()]


@pytest.mark.parametrize("kind", ["SingleGrid", "MultiGrid"])
def test_eager_moves_draw_like_mesa(kind):
    """Same seed, same calls: Mesa's random draws, so the same positions."""
    torus = kind == "MultiGrid"
    mm, jm, mg, jg, ma, ja = _placed_pair(kind, 6, 5, torus, 12)
    for _ in range(3):
        for a, b in zip(ma, ja):
            mg.move_to_empty(a)
            jg.move_to_empty(b)
    assert [a.pos for a in ja] == [a.pos for a in ma]
    for a, b in zip(ma, ja):
        opts = [p for p in mg.get_neighborhood(a.pos, True, False, 2) if mg.is_cell_empty(p)]
        mg.move_agent_to_one_of(a, list(opts), selection="closest")
        jg.move_agent_to_one_of(b, list(opts), selection="closest")
        opts = [p for p in mg.get_neighborhood(a.pos, False, True, 1) if mg.is_cell_empty(p) or p == a.pos]
        mg.move_agent_to_one_of(a, opts, selection="random")
        jg.move_agent_to_one_of(b, opts, selection="random")
    assert [a.pos for a in ja] == [a.pos for a in ma]
    mg.swap_pos(ma[0], ma[1])
    jg.swap_pos(ja[0], ja[1])
    assert [a.pos for a in ja] == [a.pos for a in ma]
    assert jg.empties == mg.empties
    assert [(_content_ids(c), p) for c, p in jg.coord_iter()] == [
        (_content_ids(c), p) for c, p in mg.coord_iter()]


def test_eager_errors_match_mesa():
    mm, jm, mg, jg, ma, ja = _placed_pair("SingleGrid", 4, 3, False, 3)
    occupied = ma[1].pos
    _raises_same(lambda: mg.place_agent(MesaAgent(mm), occupied),
                 lambda: jg.place_agent(JaxAgent(jm), occupied))
    # moving onto an occupied cell: Mesa takes the agent off first, then raises
    _raises_same(lambda: mg.move_agent(ma[0], occupied), lambda: jg.move_agent(ja[0], occupied))
    assert ma[0].pos is None and ja[0].pos is None
    mg.place_agent(ma[0], (0, 0)) if mg.is_cell_empty((0, 0)) else None
    jg.place_agent(ja[0], (0, 0)) if jg.is_cell_empty((0, 0)) else None
    _raises_same(lambda: mg.move_agent(ma[2], (4, 0)), lambda: jg.move_agent(ja[2], (4, 0)))
    _raises_same(lambda: mg.torus_adj((-1, 0)), lambda: jg.torus_adj((-1, 0)))
    _raises_same(lambda: mg.get_neighborhood((7, 1), True), lambda: jg.get_neighborhood((7, 1), True))
    _raises_same(lambda: mg.place_agent(MesaAgent(mm), (9, 0)),
                 lambda: jg.place_agent(JaxAgent(jm), (9, 0)))
    loose_m, loose_j = MesaAgent(mm), JaxAgent(jm)
    _raises_same(lambda: mg.swap_pos(ma[1], loose_m), lambda: jg.swap_pos(ja[1], loose_j))
    _raises_same(lambda: mg.move_agent_to_one_of(ma[1], [(0, 1)], selection="far"),
                 lambda: jg.move_agent_to_one_of(ja[1], [(0, 1)], selection="far"))
    _raises_same(lambda: mg.move_agent_to_one_of(ma[1], [], handle_empty="error"),
                 lambda: jg.move_agent_to_one_of(ja[1], [], handle_empty="error"))
    # a full grid
    fm, fj = _pair()
    full_m, full_j = mesa.space.SingleGrid(2, 1, False), js.SingleGrid(2, 1, False)
    am, aj = [MesaAgent(fm) for _ in range(2)], [JaxAgent(fj) for _ in range(2)]
    for i in range(2):
        full_m.place_agent(am[i], (i, 0))
        full_j.place_agent(aj[i], (i, 0))
    assert full_j.exists_empty_cells() is False
    _raises_same(lambda: full_m.move_to_empty(am[0]), lambda: full_j.move_to_empty(aj[0]))
    # MultiGrid: removing an agent that is not placed
    mgm, mgj = mesa.space.MultiGrid(3, 3, False), js.MultiGrid(3, 3, False)
    _raises_same(lambda: mgm.remove_agent(MesaAgent(mm)), lambda: mgj.remove_agent(JaxAgent(jm)))
    # placing an agent that has a position already warns as Mesa does
    with pytest.warns(UserWarning, match="despite already having the position"):
        jg.place_agent(ja[1], next(iter(jg.empties)))


class MesaMoney(mesa.Model):
    def __init__(self, seed):
        super().__init__(seed=seed)
        self.grid = mesa.space.MultiGrid(5, 5, True)
        for _ in range(30):
            MesaMoneyAgent(self)
            self.grid.place_agent(list(self.agents)[-1], (self.random.randrange(5), self.random.randrange(5)))

    def step(self):
        self.agents.shuffle_do("step")


def _money_step(self):
    steps = self.model.grid.get_neighborhood(self.pos, moore=True, include_center=False)
    self.model.grid.move_agent(self, self.random.choice(steps))
    if self.wealth > 0:
        mates = [a for a in self.model.grid.get_cell_list_contents([self.pos]) if a is not self]
        if len(mates) > 0:
            self.random.choice(mates).wealth += 1
            self.wealth -= 1


class MesaMoneyAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    step = _money_step


class JaxMoneyAgent(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    step = _money_step


class JaxMoney(mesa_jax.Model):
    def __init__(self, seed):
        super().__init__(seed=seed)
        self.grid = js.MultiGrid(5, 5, True)
        for _ in range(30):
            JaxMoneyAgent(self)
            self.grid.place_agent(list(self.agents)[-1], (self.random.randrange(5), self.random.randrange(5)))

    def step(self):
        self.agents.shuffle_do("step")


def test_eager_model_on_multigrid_is_mesa_step_for_step(eager):
    """Eagerly the legacy grid keeps Mesa's cell order, so a seeded model is Mesa's run."""
    a, b = MesaMoney(seed=4), JaxMoney(seed=4)
    for _ in range(8):
        a.step()
        b.step()
        assert [x.pos for x in b.agents] == [x.pos for x in a.agents]
        assert [x.wealth for x in b.agents] == [x.wealth for x in a.agents]


# ------------------------------------------------------------ property layers
def test_property_layers_match_mesa():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = mesa.space.PropertyLayer("sugar", 5, 4, 0.0)
        lj = js.PropertyLayer("sugar", 5, 4, 0.0)
    for layer in (lm, lj):
        layer.set_cell((1, 2), 4.0)
        layer.set_cells(2.0, lambda v: v == 0.0)
        layer.modify_cell((3, 3), lambda v: v + 5)
        layer.modify_cell((0, 0), np.multiply, 3)
        layer.modify_cells(np.add, 1.0, lambda v: v > 2.5)
        layer.modify_cells(lambda v: v * 2)
    assert np.array_equal(lm.data, lj.data)
    assert lm.select_cells(lambda d: d > 6) == lj.select_cells(lambda d: d > 6)
    assert lm.aggregate_property(np.sum) == lj.aggregate_property(np.sum)
    _raises_same(lambda: mesa.space.PropertyLayer("x", 0, 3, 1.0), lambda: js.PropertyLayer("x", 0, 3, 1.0))
    _raises_same(lambda: lm.modify_cell((0, 0), np.add), lambda: lj.modify_cell((0, 0), np.add))
    _raises_same(lambda: lm.modify_cells(np.add), lambda: lj.modify_cells(np.add))

    mm, jm, mg, jg, ma, ja = _placed_pair("SingleGrid", 5, 4, True, 7)
    mg.add_property_layer(lm)
    jg.add_property_layer(lj)
    mask = np.zeros((5, 4), bool)
    mask[1:4, :] = True
    for kw in [dict(conditions={"sugar": lambda d: d > 5}),
               dict(extreme_values={"sugar": "highest"}),
               dict(extreme_values={"sugar": "lowest"}, only_empty=True),
               dict(conditions={"sugar": lambda d: d >= 6}, masks=mask, only_empty=True),
               dict(masks=[mask, mg.get_neighborhood_mask((2, 2), True, False, 1)])]:
        assert jg.select_cells(**kw) == mg.select_cells(**kw)
        assert np.array_equal(jg.select_cells(**kw, return_list=False),
                              mg.select_cells(**kw, return_list=False))
    assert np.array_equal(jg.get_neighborhood_mask((0, 0), False, True, 2),
                          mg.get_neighborhood_mask((0, 0), False, True, 2))
    _raises_same(lambda: mg.add_property_layer(lm), lambda: jg.add_property_layer(lj))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_m, small_j = mesa.space.PropertyLayer("s", 2, 2, 1), js.PropertyLayer("s", 2, 2, 1)
    _raises_same(lambda: mg.add_property_layer(small_m), lambda: jg.add_property_layer(small_j))
    _raises_same(lambda: mg.select_cells(conditions={"water": lambda d: d > 0}),
                 lambda: jg.select_cells(conditions={"water": lambda d: d > 0}))
    _raises_same(lambda: mg.select_cells(extreme_values={"sugar": "most"}),
                 lambda: jg.select_cells(extreme_values={"sugar": "most"}))
    _raises_same(lambda: mg.remove_property_layer("water"), lambda: jg.remove_property_layer("water"))
    mg.remove_property_layer("sugar")
    jg.remove_property_layer("sugar")
    assert jg.properties == {} and mg.properties == {}
    with pytest.warns(UserWarning, match="might not be best suitable"):  # as Mesa: 1.0 is no np.float64
        layer = js.PropertyLayer("a", 5, 4, 1.0)
    grid = js.MultiGrid(5, 4, False, property_layers=layer)
    assert list(grid.properties) == ["a"]


# ------------------------------------------------------------------- hex
@pytest.mark.parametrize("kind", ["HexSingleGrid", "HexMultiGrid"])
@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("size", [(5, 4), (4, 6)])
def test_hex_grids_match_mesa(kind, torus, size):
    w, h = size
    n = 6 if "Single" in kind else 15
    _, _, mg, jg, _, _ = _placed_pair(kind, w, h, torus, n)
    for x in range(w):
        for y in range(h):
            for inc in (True, False):
                for r in (1, 2, 3):
                    assert jg.get_neighborhood((x, y), inc, r) == tuple(mg.get_neighborhood((x, y), inc, r))
                    assert list(jg.iter_neighborhood((x, y), inc, r)) == list(
                        mg.iter_neighborhood((x, y), inc, r))
                    assert _ids(jg.get_neighbors((x, y), inc, r)) == _ids(mg.get_neighbors((x, y), inc, r))
    assert jg.empties == mg.empties


# --------------------------------------------------------------- network
def _graphs():
    return [nx.erdos_renyi_graph(12, 0.25, seed=3), nx.path_graph(7),
            nx.relabel_nodes(nx.cycle_graph(6), {i: f"n{i}" for i in range(6)}),
            nx.DiGraph([(0, 1), (1, 2), (2, 0), (2, 3)])]


@pytest.mark.parametrize("gi", range(4))
def test_network_grid_matches_mesa(gi):
    gm, gj = _graphs()[gi], _graphs()[gi]
    mm, jm = _pair()
    mg, jg = mesa.space.NetworkGrid(gm), js.NetworkGrid(gj)
    nodes = list(gm.nodes)
    rng = np.random.default_rng(gi)
    ma = [MesaAgent(mm) for _ in range(10)]
    ja = [JaxAgent(jm) for _ in range(10)]
    for a, b in zip(ma, ja):
        node = nodes[int(rng.integers(len(nodes)))]
        mg.place_agent(a, node)
        jg.place_agent(b, node)
    assert [a.pos for a in ja] == [a.pos for a in ma]
    for node in nodes:
        for inc in (True, False):
            for r in (1, 2, 3):
                assert jg.get_neighborhood(node, inc, r) == mg.get_neighborhood(node, inc, r)
                assert _ids(jg.get_neighbors(node, inc, r)) == _ids(mg.get_neighbors(node, inc, r))
        assert jg.is_cell_empty(node) == mg.is_cell_empty(node)
    assert _ids(jg.get_cell_list_contents(nodes[:4])) == _ids(mg.get_cell_list_contents(nodes[:4]))
    assert _ids(jg.get_all_cell_contents()) == _ids(mg.get_all_cell_contents())
    for a, b in zip(ma[:4], ja[:4]):
        mg.move_agent(a, nodes[-1])
        jg.move_agent(b, nodes[-1])
    mg.remove_agent(ma[5])
    jg.remove_agent(ja[5])
    assert [a.pos for a in ja] == [a.pos for a in ma]
    assert _ids(jg.get_all_cell_contents()) == _ids(mg.get_all_cell_contents())
    assert sorted(_ids(jg.agents)) == sorted(_ids(mg.agents))
    _raises_same(lambda: mg.remove_agent(ma[5]), lambda: jg.remove_agent(ja[5]))
    _raises_same(lambda: mg.place_agent(MesaAgent(mm), "nowhere"),
                 lambda: jg.place_agent(JaxAgent(jm), "nowhere"))
    _raises_same(lambda: mg.get_neighborhood("nowhere"), lambda: jg.get_neighborhood("nowhere"))


# ------------------------------------------------------------- continuous
@pytest.mark.parametrize("torus", [False, True])
def test_continuous_space_matches_mesa(torus):
    mm, jm = _pair()
    ms = mesa.space.ContinuousSpace(10, 8, torus, x_min=-2, y_min=1)
    jsp = js.ContinuousSpace(10, 8, torus, x_min=-2, y_min=1)
    rng = np.random.default_rng(7)
    pts = [(float(rng.uniform(-2, 10)), float(rng.uniform(1, 8))) for _ in range(25)]
    pts += [pts[0], (3.0, 4.0)]
    ma = [MesaAgent(mm) for _ in pts]
    ja = [JaxAgent(jm) for _ in pts]
    for a, b, p in zip(ma, ja, pts):
        ms.place_agent(a, p)
        jsp.place_agent(b, p)
    assert [b.pos for b in ja] == [a.pos for a in ma]
    for center in [pts[0], (3.0, 4.0), (9.5, 7.5), (-2.0, 1.0)]:
        for radius in (0.0, 1.0, 2.5, 6.0):
            for inc in (True, False):
                assert _ids(jsp.get_neighbors(center, radius, inc)) == _ids(ms.get_neighbors(center, radius, inc))
    for p, q in [(pts[1], pts[2]), ((-1.5, 1.5), (9.5, 7.5)), ((0.0, 2.0), (0.0, 2.0))]:
        assert jsp.get_distance(p, q) == ms.get_distance(p, q)
        assert np.array_equal(jsp.get_heading(p, q), ms.get_heading(p, q))
        assert type(jsp.get_heading(p, q)) is type(ms.get_heading(p, q))
        assert np.array_equal(jsp.get_heading(np.array(p), q), ms.get_heading(np.array(p), q))
    for p in [(10.5, 3.0), (-3.0, 0.0), (4.0, 4.0)]:
        assert jsp.out_of_bounds(p) == ms.out_of_bounds(p)
        if torus:
            assert jsp.torus_adj(p) == ms.torus_adj(p)
            assert np.array_equal(jsp.torus_adj(np.array(p)), ms.torus_adj(np.array(p)))
    if torus:
        ms.move_agent(ma[3], (12.0, -1.0))
        jsp.move_agent(ja[3], (12.0, -1.0))
        assert ja[3].pos == ma[3].pos
    else:
        _raises_same(lambda: ms.move_agent(ma[3], (12.0, 2.0)), lambda: jsp.move_agent(ja[3], (12.0, 2.0)))
    ms.move_agent(ma[4], (3.1, 4.0))
    jsp.move_agent(ja[4], (3.1, 4.0))
    ms.remove_agent(ma[0])
    jsp.remove_agent(ja[0])
    assert ja[0].pos is None
    assert _ids(jsp.get_neighbors((3.0, 4.0), 3.0)) == _ids(ms.get_neighbors((3.0, 4.0), 3.0))
    assert _ids(jsp.agents) == _ids(ms.agents)
    _raises_same(lambda: ms.remove_agent(ma[0]), lambda: jsp.remove_agent(ja[0]))


# ------------------------------------------------------------ compiled steps
class Crowd(mesa_jax.Agent):
    def step(self):
        self.model.grid.move_to_empty(self)


class CrowdModel(mesa_jax.Model):
    def __init__(self, n=40, size=7, seed=None):
        super().__init__(seed=seed)
        self.grid = js.SingleGrid(size, size, torus=False)
        for _ in range(n):
            self.grid.move_to_empty(Crowd(self))

    def step(self):
        self.agents.shuffle_do("step")


def test_singlegrid_compiled_contention_never_shares_a_cell():
    m = CrowdModel(seed=2)
    moved = 0
    before = [a.pos for a in m.agents]
    for _ in range(8):
        m.step()
        pos = [a.pos for a in m.agents]
        assert None not in pos  # every agent is still placed
        assert len(set(pos)) == 40  # no two agents share a cell
        assert m.grid.empties == {(x, y) for x in range(7) for y in range(7)} - set(pos)
        moved += sum(p != q for p, q in zip(pos, before))
        before = pos
    assert m._mj_compiled.trace_count == 1
    assert moved > 40  # agents really moved: at most 9 empty cells per round, several rounds


class Jumper(mesa_jax.Agent):
    def __init__(self, model, target):
        super().__init__(model)
        self.target = target

    def step(self):
        self.model.grid.move_agent(self, (self.target, 0))


def test_singlegrid_compiled_move_onto_occupied_cell_raises():
    class JumpModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = js.SingleGrid(3, 1, torus=False)
            self.grid.place_agent(Jumper(self, 1), (0, 0))
            self.grid.place_agent(Jumper(self, 1), (1, 0))  # stays: no claim

        def step(self):
            self.agents.do("step")

    m = JumpModel()
    with pytest.raises(Exception, match="Cell not empty"):
        m.step()


class Counter(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.moore1 = 0
        self.vn2 = 0
        self.here = 0
        self.empty_near = 0

    def step(self):
        g = self.model.grid
        self.moore1 = len(g.get_neighbors(self.pos, moore=True, include_center=False))
        self.vn2 = len(g.get_neighbors(self.pos, False, True, 2))
        self.here = len(g.get_cell_list_contents([self.pos]))
        self.empty_near = sum(1 for p in g.get_neighborhood(self.pos, True) if g.is_cell_empty(p))


class CountModel(mesa_jax.Model):
    def __init__(self, kind, torus, placements):
        super().__init__(seed=1)
        self.grid = getattr(js, kind)(6, 5, torus)
        for p in placements:
            self.grid.place_agent(Counter(self), p)

    def step(self):
        self.agents.do("step")


@pytest.mark.parametrize("kind,torus", [("MultiGrid", True), ("SingleGrid", False)])
def test_traced_neighbour_counts_match_mesa(kind, torus):
    n = 12 if kind == "SingleGrid" else 30
    _, _, mg, _, ma, _ = _placed_pair(kind, 6, 5, torus, n, seed=11)
    m = CountModel(kind, torus, [a.pos for a in ma])
    m.step()
    ours = list(m.agents)
    for a, b in zip(ma, ours):
        assert b.pos == a.pos
        assert b.moore1 == len(mg.get_neighbors(a.pos, True, False))
        assert b.vn2 == len(mg.get_neighbors(a.pos, False, True, 2))
        assert b.here == len(mg.get_cell_list_contents([a.pos]))
        assert b.empty_near == sum(mg.is_cell_empty(p) for p in mg.get_neighborhood(a.pos, True))


class HexCounter(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.near = 0
        self.far = 0
        self.r = 1 + self.unique_id % 3
        self.ring = 0

    def step(self):
        self.near = len(self.model.grid.get_neighbors(self.pos))
        self.far = len(self.model.grid.get_neighbors(self.pos, True, 2))
        self.ring = len(self.model.grid.get_neighborhood(self.pos, False, self.r))  # traced radius


def test_traced_hex_and_network_counts_match_mesa():
    class HexModel(mesa_jax.Model):
        def __init__(self, placements):
            super().__init__(seed=1)
            self.grid = js.HexMultiGrid(5, 4, True)
            for p in placements:
                self.grid.place_agent(HexCounter(self), p)

        def step(self):
            self.agents.do("step")

    _, _, mg, _, ma, _ = _placed_pair("HexMultiGrid", 5, 4, True, 20, seed=4)
    m = HexModel([a.pos for a in ma])
    m.step()
    for a, b in zip(ma, m.agents):
        assert b.near == len(mg.get_neighbors(a.pos))
        assert b.far == len(mg.get_neighbors(a.pos, True, 2))
        assert b.ring == len(mg.get_neighborhood(a.pos, False, b.r))

    class NetModel(mesa_jax.Model):
        def __init__(self, g, nodes):
            super().__init__(seed=1)
            self.grid = js.NetworkGrid(g)
            for node in nodes:
                self.grid.place_agent(HexCounter(self), node)

        def step(self):
            self.agents.do("step")

    for gseed in (2, 5):  # a second graph of the same size may reuse the compiled program
        mm = mesa.Model(seed=1)
        mnet = mesa.space.NetworkGrid(nx.erdos_renyi_graph(15, 0.2, seed=gseed))
        nodes = [int(v) for v in np.random.default_rng(gseed).integers(0, 15, 25)]
        for node in nodes:
            mnet.place_agent(MesaAgent(mm), node)
        m = NetModel(nx.erdos_renyi_graph(15, 0.2, seed=gseed), nodes)
        m.step()
        for node, b in zip(nodes, m.agents):
            assert b.pos == node
            assert b.near == len(mnet.get_neighbors(node))
            assert b.far == len(mnet.get_neighbors(node, True, 2))
            assert b.ring == len(mnet.get_neighborhood(node, False, b.r))


class NetWalker(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.prev = 0

    def step(self):
        self.prev = self.pos
        options = self.model.grid.get_neighborhood(self.pos, include_center=False)
        if len(options) > 0:
            self.model.grid.move_agent(self, self.random.choice(options))


def test_traced_network_walk_follows_edges():
    g = nx.cycle_graph(9)
    g.add_edges_from([(0, 4), (2, 7)])

    class WalkModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=3)
            self.grid = js.NetworkGrid(g)
            for i in range(12):
                self.grid.place_agent(NetWalker(self), i % 9)

        def step(self):
            self.agents.do("step")

    m = WalkModel()
    for _ in range(4):
        m.step()
        for a in m.agents:
            assert g.has_edge(a.prev, a.pos)


class Boid(mesa_jax.Agent):
    def __init__(self, model, velocity):
        super().__init__(model)
        self.velocity = velocity
        self.crowd = 0

    def step(self):
        self.crowd = len(self.model.space.get_neighbors(self.pos, 1.5, include_center=False))
        self.model.space.move_agent(self, self.pos + self.velocity)


def test_traced_continuous_space_moves_and_neighbours():
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 6, (30, 2)).astype(np.float32)
    vel = rng.uniform(-1, 1, (30, 2)).astype(np.float32)

    class Flock(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.space = js.ContinuousSpace(6, 6, True)
            for p, v in zip(pts, vel):
                self.space.place_agent(Boid(self, v), (float(p[0]), float(p[1])))

        def step(self):
            self.agents.do("step")

    mm = mesa.Model(seed=1)
    ms = mesa.space.ContinuousSpace(6, 6, True)
    mesa_agents = [MesaAgent(mm) for _ in pts]
    for a, p in zip(mesa_agents, pts):
        ms.place_agent(a, (float(p[0]), float(p[1])))
    m = Flock()
    m.step()
    for a, b, p, v in zip(mesa_agents, m.agents, pts, vel):
        assert b.crowd == len(ms.get_neighbors(a.pos, 1.5, include_center=False))
        expect = np.mod(p + v, 6.0)
        assert np.allclose(b.pos, expect, atol=1e-5)
    assert len(m.space.get_neighbors((3.0, 3.0), 10.0)) == 30


class Mover(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.kind = self.unique_id % 3

    def step(self):
        x, y = self.pos
        if self.kind == 0:
            self.model.grid.move_agent(self, (x + 1, y))  # wraps round the torus
        elif self.kind == 1:
            options = self.model.grid.get_neighborhood(self.pos, False, True)
            self.model.grid.move_agent_to_one_of(self, options, selection="closest")
        else:
            self.model.grid.move_agent_to_one_of(self, [(0, 0), (1, 1)])


def test_traced_moves_on_multigrid():
    class MoveModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=2)
            self.grid = js.MultiGrid(4, 3, True)
            self.empty_count = 0
            self.any_empty = False
            for i in range(9):
                self.grid.place_agent(Mover(self), (i % 4, i % 3))

        def step(self):
            self.agents.do("step")
            self.empty_count = len(self.grid.empties)
            self.any_empty = self.grid.exists_empty_cells()

    m = MoveModel()
    before = {a.unique_id: a.pos for a in m.agents}
    m.step()
    for a in m.agents:
        x, y = before[a.unique_id]
        if a.kind == 0:
            assert a.pos == ((x + 1) % 4, y)
        elif a.kind == 1:
            assert a.pos == (x, y)  # the closest of the neighbourhood with its centre is the centre
        else:
            assert a.pos in [(0, 0), (1, 1)]
    assert m.empty_count == len(m.grid.empties)
    assert m.any_empty == m.grid.exists_empty_cells()


def test_traced_swap_pos_and_out_of_bounds_move_on_singlegrid():
    class Edge(mesa_jax.Agent):
        def step(self):
            x, y = self.pos
            if y + 1 < self.model.grid.height:  # (off the top edge would raise, as Mesa)
                self.model.grid.move_agent(self, (x, y + 1))

    class SwapModel(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=2)
            self.grid = js.SingleGrid(3, 2, False)
            self.first, self.second = Edge(self), Edge(self)
            self.grid.place_agent(self.first, (0, 1))
            self.grid.place_agent(self.second, (2, 1))

        def step(self):
            self.agents.do("step")
            self.grid.swap_pos(self.first, self.second)
            self.grid.move_agent(self.first, (1, 0))  # an agent kept on the model, moved there

    m = SwapModel()
    m.step()
    assert m.first.pos == (1, 0) and m.second.pos == (0, 1)


class Peeker(mesa_jax.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.right_taken = False
        self.right_empty = False

    def step(self):
        x, y = self.pos
        if x + 1 < self.model.grid.width:  # off the grid Mesa raises (see the error tests)
            other = self.model.grid[x + 1, y]
            self.right_taken = other is not None
            self.right_empty = self.model.grid.is_cell_empty((x + 1, y))


def test_traced_indexing_and_emptiness_on_singlegrid():
    class PeekModel(mesa_jax.Model):
        def __init__(self, cells):
            super().__init__(seed=1)
            self.grid = js.SingleGrid(5, 3, False)
            for c in cells:
                self.grid.place_agent(Peeker(self), c)

        def step(self):
            self.agents.do("step")

    cells = [(0, 0), (1, 0), (3, 0), (4, 1), (2, 2), (3, 2)]
    m = PeekModel(cells)
    m.step()
    for a in m.agents:
        x, y = a.pos
        right = (x + 1, y)
        assert a.right_taken == (right in cells)
        assert a.right_empty == (x + 1 < 5 and right not in cells)

    class Iterating(mesa_jax.Model):
        def __init__(self):
            super().__init__(seed=1)
            self.grid = js.MultiGrid(3, 3, False)
            self.grid.place_agent(Peeker(self), (0, 0))
            self.total = 0

        def step(self):
            for content, _ in self.grid.coord_iter():
                self.total += len(content)

    with pytest.raises(mesa_jax.errors.UnsupportedError, match="cell by cell"):
        Iterating().step()


# ------------------------------------------- Mesa's errors from compiled steps
def _twin_models(setup, act=None, model_step=None, seed=3):
    """The same model in Mesa and in mesa_jax: ``setup(model, space_module, AgentClass)``
    builds it; agents step with ``act(agent)``; the model step is ``model_step(model)``
    (default: every agent steps, in order)."""
    out = []
    for lib, sp in ((mesa, mesa.space), (mesa_jax, js)):
        class A(lib.Agent):
            def __init__(self, model):
                super().__init__(model)
                self.note = False

            def step(self):
                act(self)

        class M(lib.Model):
            def __init__(self):
                super().__init__(seed=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    setup(self, sp, A)

            def step(self):
                if model_step is None:
                    self.agents.do("step")
                else:
                    model_step(self)

        out.append(M())
    return out


def _snapshot(m):
    agents = sorted(m.agents, key=lambda a: a.unique_id)
    return (m.steps, [(a.unique_id, a.pos, a.note) for a in agents])


def _step_raises_like_mesa(mm, jm):
    """Mesa's step raises; mesa_jax's compiled step raises the same type and message and
    leaves the model as it was before the step. Returns mesa_jax's exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as em:
            mm.step()
    before = _snapshot(jm)
    with pytest.raises(Exception) as ej:
        jm.step()
    assert jm._mj_compiled is not None  # the step was compiled, not run eagerly
    assert type(ej.value) is type(em.value), (ej.value, em.value)
    assert str(ej.value) == str(em.value)
    assert _snapshot(jm) == before
    return ej.value


def _grid_setup(kind, w, h, torus, cells):
    def setup(m, sp, A):
        m.grid = getattr(sp, kind)(w, h, torus)
        for c in cells:
            m.grid.place_agent(A(m), c)
    return setup


@pytest.mark.parametrize("kind", ["SingleGrid", "MultiGrid"])
def test_compiled_move_off_a_non_torus_grid_raises_mesas_exception(kind):
    # agent 1 and 3 step to the right in bounds; agent 2 steps off the right edge
    setup = _grid_setup(kind, 4, 3, False, [(0, 0), (3, 1), (1, 2)])
    mm, jm = _twin_models(setup, lambda a: a.model.grid.move_agent(a, (a.pos[0] + 1, a.pos[1])))
    err = _step_raises_like_mesa(mm, jm)
    assert "agent 2, position (4, 1)" in "".join(getattr(err, "__notes__", []))
    # the same move in a branch no agent takes raises nothing
    def careful(a):
        if a.pos[0] + 1 < a.model.grid.width:
            a.model.grid.move_agent(a, (a.pos[0] + 1, a.pos[1]))
    mm, jm = _twin_models(setup, careful)
    mm.step()
    jm.step()
    assert [a.pos for a in jm.agents] == [a.pos for a in mm.agents] == [(1, 0), (3, 1), (2, 2)]
    # on a torus the move wraps
    mm, jm = _twin_models(_grid_setup(kind, 4, 3, True, [(0, 0), (3, 1), (1, 2)]),
                          lambda a: a.model.grid.move_agent(a, (a.pos[0] + 1, a.pos[1])))
    mm.step()
    jm.step()
    assert [a.pos for a in jm.agents] == [a.pos for a in mm.agents]


@pytest.mark.parametrize("call", ["torus_adj", "getitem", "neighborhood", "neighbors",
                                  "neighborhood_torus", "is_cell_empty", "contents", "place",
                                  "float"])
def test_compiled_out_of_bounds_queries_raise_mesas_exception(call):
    torus = call == "neighborhood_torus"
    kind = "SingleGrid" if call == "place" else "MultiGrid"
    acts = {
        "torus_adj": lambda a: a.model.grid.torus_adj((a.pos[0], a.pos[1] - 3)),
        "getitem": lambda a: a.model.grid[a.pos[0] + 5, a.pos[1]],
        "neighborhood": lambda a: a.model.grid.get_neighborhood((a.pos[0] + 5, a.pos[1]), True),
        "neighbors": lambda a: a.model.grid.get_neighbors((a.pos[0], a.pos[1] - 4), False, True),
        "neighborhood_torus": lambda a: a.model.grid.get_neighborhood((a.pos[0] + 5, a.pos[1]), True),
        "is_cell_empty": lambda a: a.model.grid.is_cell_empty((a.pos[0] + 5, a.pos[1])),
        "contents": lambda a: a.model.grid.get_cell_list_contents([(a.pos[0], a.pos[1] + 3)]),
        "place": lambda a: a.model.grid.place_agent(a, (a.pos[0] + 7, a.pos[1])),
        "float": lambda a: a.model.grid.move_agent(a, (a.pos[0] * 0.5, a.pos[1])),
    }
    setup = _grid_setup(kind, 4, 3, torus, [(0, 0), (3, 1)])
    mm, jm = _twin_models(setup, acts[call])
    _step_raises_like_mesa(mm, jm)


def test_compiled_negative_index_counts_from_the_end_as_mesa():
    # Mesa's _grid[x][y] reads (-1, 0) as (width - 1, 0): no error
    setup = _grid_setup("MultiGrid", 4, 3, False, [(0, 0), (3, 1)])
    mm, jm = _twin_models(setup, lambda a: setattr(a, "note", a.model.grid.is_cell_empty((a.pos[0] - 1, 1))))
    mm.step()
    jm.step()
    assert [a.note for a in jm.agents] == [a.note for a in mm.agents] == [False, True]


def test_compiled_move_to_empty_on_a_full_grid_raises_mesas_exception():
    cells = [(x, y) for x in range(2) for y in range(2)]
    mm, jm = _twin_models(_grid_setup("SingleGrid", 2, 2, False, cells),
                          lambda a: a.model.grid.move_to_empty(a))
    _step_raises_like_mesa(mm, jm)
    # one empty cell: no error (agents take turns for it)
    mm, jm = _twin_models(_grid_setup("SingleGrid", 2, 2, False, cells[:3]),
                          lambda a: a.model.grid.move_to_empty(a))
    mm.step()
    jm.step()
    assert len({a.pos for a in jm.agents}) == 3


def test_compiled_swap_and_remove_of_agents_not_on_the_grid_raise_mesas_exceptions():
    def setup(m, sp, A):
        m.grid = sp.MultiGrid(3, 3, False)
        m.a, m.b, m.c = A(m), A(m), A(m)
        m.grid.place_agent(m.a, (0, 0))
        m.grid.place_agent(m.b, (1, 1))

    for model_step in (lambda m: m.grid.swap_pos(m.a, m.c),
                       lambda m: m.grid.swap_pos(m.c, m.b),
                       lambda m: m.grid.remove_agent(m.c),
                       lambda m: m.grid.move_agent(m.c, (2, 2))):
        mm, jm = _twin_models(setup, model_step=model_step)
        _step_raises_like_mesa(mm, jm)
    mm, jm = _twin_models(setup, model_step=lambda m: m.grid.swap_pos(m.a, m.b))
    mm.step()
    jm.step()
    assert (jm.a.pos, jm.b.pos) == (mm.a.pos, mm.b.pos) == ((1, 1), (0, 0))


def test_compiled_move_agent_to_one_of_follows_mesa():
    setup = _grid_setup("MultiGrid", 4, 3, False, [(0, 0), (3, 1)])
    # no positions: ValueError naming the first agent with handle_empty="error" ...
    mm, jm = _twin_models(setup, lambda a: a.model.grid.move_agent_to_one_of(a, [], handle_empty="error"))
    _step_raises_like_mesa(mm, jm)
    # ... nothing at all without it
    mm, jm = _twin_models(setup, lambda a: a.model.grid.move_agent_to_one_of(a, []))
    mm.step()
    jm.step()
    assert [a.pos for a in jm.agents] == [a.pos for a in mm.agents] == [(0, 0), (3, 1)]
    # the chosen position off the grid: move_agent's exception
    mm, jm = _twin_models(setup, lambda a: a.model.grid.move_agent_to_one_of(
        a, [(a.pos[0], a.pos[1] + 5)], selection="closest"))
    _step_raises_like_mesa(mm, jm)


def _net_setup(m, sp, A):
    m.grid = sp.NetworkGrid(nx.path_graph(5))
    m.loose = None
    for node in (0, 3):
        m.grid.place_agent(A(m), node)
    m.loose = A(m)


@pytest.mark.parametrize("call", ["move", "place", "neighborhood", "neighborhood2", "empty",
                                  "remove", "move_loose"])
def test_compiled_network_node_not_in_graph_raises_mesas_exception(call):
    acts = {
        "move": lambda a: a.model.grid.move_agent(a, a.pos + 4),
        "place": lambda a: a.model.grid.place_agent(a, a.pos + 9),
        "neighborhood": lambda a: a.model.grid.get_neighborhood(a.pos + 7),
        "neighborhood2": lambda a: a.model.grid.get_neighbors(a.pos + 7, radius=2),
        "empty": lambda a: a.model.grid.is_cell_empty(a.pos + 5),
    }
    steps = {"remove": lambda m: m.grid.remove_agent(m.loose),
             "move_loose": lambda m: m.grid.move_agent(m.loose, 1)}
    if call in acts:
        def act(a):
            if a.pos is not None:
                acts[call](a)
        mm, jm = _twin_models(_net_setup, act)
    else:
        mm, jm = _twin_models(_net_setup, model_step=steps[call])
    _step_raises_like_mesa(mm, jm)


@pytest.mark.parametrize("call", ["move", "place", "remove", "model_move"])
def test_compiled_continuous_space_off_a_non_torus_space_raises_mesas_exception(call):
    def setup(m, sp, A):
        m.space = sp.ContinuousSpace(10.0, 5.0, False)
        for p in ((1.0, 1.0), (9.5, 2.0)):
            m.space.place_agent(A(m), p)
        m.loose = A(m)
        m.first = m.agents[0]

    acts = {"move": lambda a: a.model.space.move_agent(a, (a.pos[0] + 1.0, a.pos[1])),
            "place": lambda a: a.model.space.place_agent(a, (a.pos[0], a.pos[1] - 1.5))}
    steps = {"remove": lambda m: m.space.remove_agent(m.loose),
             "model_move": lambda m: m.space.move_agent(m.first, (-0.5, 1.0))}
    if call in acts:
        def act(a):
            if a.pos is not None:
                acts[call](a)
        mm, jm = _twin_models(setup, act)
    else:
        mm, jm = _twin_models(setup, model_step=steps[call])
    err = _step_raises_like_mesa(mm, jm)
    if call == "move":
        assert "agent 2, position about (10.5, 2.0)" in "".join(err.__notes__)
