"""step() running ahead in chunks of the stepping loop (see CompiledStep.step_once):
whatever the host does between steps, the model is where Mesa's is, bit for bit where
it reads the model at different times."""

import numpy as np
import pytest

import mesa
import mesa.discrete_space
import mesa_jax
import mesa_jax.discrete_space
from mesa_jax import _compile
from mesa_jax import space as js
from mesa_jax.redirect import mesa_example


def _piles(base, space):
    """Walkers on a row of a non-torus grid, each moving ``speed`` cells left a step and
    stopping at column 0 (``clamp``; without it the first to arrive walks off the grid):
    the pile at column 0 grows by one a step, so the cell index's capacity grows while
    the model runs. Looking (how many share my cell) and moving are two passes, so the
    result does not depend on the activation order."""

    class Walker(base.Agent):
        def __init__(self, model):
            super().__init__(model)
            self.crowd = 0
            self.moves = 0

        def look(self):
            self.crowd = len(self.model.grid.get_cell_list_contents([self.pos]))

        def move(self):
            x, y = self.pos
            x = x - self.model.speed
            if self.model.clamp and x < 0:
                x = 0
            if x != self.pos[0]:
                self.moves += 1
            self.model.grid.move_agent(self, (x, y))

    class Piles(base.Model):
        def __init__(self, n=20, stop_at=0, clamp=True, seed=1):
            super().__init__(seed=seed)
            self.grid = space.MultiGrid(n, 2, False)
            for i in range(n):
                self.grid.place_agent(Walker(self), (i, i % 2))
            self.speed = 1
            self.clamp = clamp
            self.stop_at = stop_at
            self.pile = 0
            self.spread = np.zeros(n, np.int32)

        def step(self):
            self.agents.do("look")
            self.agents.do("move")
            self.pile = self.agents.agg("crowd", max)
            self.spread = np.asarray([a.pos[0] for a in self.agents], np.int32)
            if self.stop_at and self.steps >= self.stop_at:
                self.running = False

    return Piles


def _state(m):
    return [(a.unique_id, a.pos, a.crowd, a.moves) for a in m.agents]


def _numbers(m):
    return (m.steps, m.pile, m.running, [int(x) for x in m.spread])


def test_a_tight_loop_runs_ahead_and_ends_where_mesa_does():
    theirs, ours = _piles(mesa, mesa.space)(), _piles(mesa_jax, js)()
    mesa_numbers, our_numbers = [], []
    for _ in range(40):
        theirs.step()
        ours.step()
        mesa_numbers.append(_numbers(theirs))
        our_numbers.append(_numbers(ours))  # the model's numbers only: no landing
    cs = ours._mj_compiled
    assert cs._k == _compile._AHEAD_MAX > 1  # it did run ahead, in full chunks
    assert cs.replays > 0  # the pile outgrew the cell index's capacity while ahead
    assert our_numbers == mesa_numbers
    assert _state(ours) == _state(theirs)


@pytest.mark.parametrize("every", [1, 3, 7])
def test_reading_the_agents_between_steps_changes_nothing(every):
    theirs, ours = _piles(mesa, mesa.space)(), _piles(mesa_jax, js)()
    for i in range(30):
        theirs.step()
        ours.step()
        if i % every == 0:
            assert _state(ours) == _state(theirs), i
    assert _numbers(ours) == _numbers(theirs)
    assert _state(ours) == _state(theirs)


def test_host_writes_and_parameter_changes_between_steps_are_seen():
    """A write to an agent, to a model number and to a parameter the step reads, each in
    the middle of a chunk run ahead: Mesa's results."""
    models = [_piles(mesa, mesa.space)(), _piles(mesa_jax, js)()]
    for m in models:
        for i in range(24):
            m.step()
            if i == 9:
                first = min(m.agents, key=lambda a: a.unique_id)
                first.moves = 100  # an agent attribute
            if i == 13:
                m.pile = -5  # a number the step writes (and the host may read back)
            if i == 17:
                m.speed = 2  # a parameter: another program
    assert _state(models[1]) == _state(models[0])
    assert _numbers(models[1]) == _numbers(models[0])


def test_float_trajectories_do_not_depend_on_when_the_host_looks():
    """Boids (floats, random activation order): stepped in one tight loop, or with the
    positions read every third step, or with run-ahead off: the same bits."""
    BoidFlockers = mesa_example("mesa.examples.basic.boid_flockers.model").BoidFlockers

    def positions(m):
        return np.array([a.position for a in sorted(m.agents, key=lambda a: a.unique_id)])

    def run(look_every, ahead):
        old = _compile._AHEAD_MAX
        _compile._AHEAD_MAX = ahead
        try:
            m = BoidFlockers(population_size=40, width=40, height=40, vision=8, seed=4)
            for i in range(25):
                m.step()
                if look_every and i % look_every == 0:
                    positions(m)
            k = m._mj_compiled._k  # (before looking: a look inside a chunk shortens the next)
            return positions(m), m.average_heading, k
        finally:
            _compile._AHEAD_MAX = old

    tight, heading, k = run(0, 16)
    assert k == 16
    looked, heading_looked, _ = run(3, 16)
    assert np.array_equal(tight, looked) and heading == heading_looked
    plain, heading_plain, k_plain = run(0, 1)
    assert k_plain == 1
    assert np.array_equal(tight, plain) and heading == heading_plain


def test_run_model_and_a_running_loop_stop_where_mesa_does():
    theirs = _piles(mesa, mesa.space)(stop_at=23)
    theirs.run_model()
    ours = _piles(mesa_jax, js)(stop_at=23)
    ours.run_model()
    assert ours.steps == theirs.steps == 23
    assert _state(ours) == _state(theirs)
    ours = _piles(mesa_jax, js)(stop_at=23)
    while ours.running:
        ours.step()
    assert ours.steps == 23 and _state(ours) == _state(theirs)


def test_an_error_inside_a_chunk_is_raised_at_its_step():
    """Without the clamp the first walker leaves the grid on step 1 + its start column;
    start the walkers further right so that it happens deep inside a chunk."""
    steps = {}
    for base, space in ((mesa, mesa.space), (mesa_jax, js)):
        m = _piles(base, space)(clamp=False)
        for a in m.agents:
            m.grid.move_agent(a, (a.pos[0] + 19 if a.pos[0] == 0 else a.pos[0], a.pos[1]))
        m.speed = 1
        with pytest.raises(Exception) as err:
            for _ in range(40):
                m.step()
        steps[base] = (m.steps, type(err.value), str(err.value))
    assert steps[mesa_jax][1:] == steps[mesa][1:]
    assert steps[mesa_jax][0] == steps[mesa][0] - 1  # Mesa counts the failed step; the state before it is kept


def _climbers(base):
    """On a network (``discrete_space.Network``, as Mesa's virus example) each node's agent
    counts its neighbours with a higher value and moves its value by that count, modulo 7
    (it never settles): integers, two passes (so the activation order does not matter)."""

    class Climber(base.discrete_space.CellAgent):
        def __init__(self, model, cell, value):
            super().__init__(model)
            self.cell = cell
            self.value = value
            self.higher = 0

        def look(self):
            self.higher = len([n for n in self.cell.neighborhood.agents if n.value > self.value])

        def climb(self):
            self.value = (self.value + 3 * self.higher + 1) % 7

    class Climbers(base.Model):
        def __init__(self, graph):
            super().__init__(seed=3)
            self.grid = base.discrete_space.Network(graph, capacity=1, random=self.random)
            for node in sorted(graph.nodes):
                Climber(self, self.grid[node], (node * 7) % 5)

        def step(self):
            self.agents.do("look")
            self.agents.do("climb")

    return Climbers


def test_models_sharing_a_program_keep_their_own_network():
    """Two networks of one shape (a ring of 12, two rings of 6: every node has two
    neighbours) share the compiled stepping loop; each steps on its own edges for every
    step of a chunk."""
    import networkx as nx

    ring = nx.cycle_graph(12)
    two_rings = nx.union(nx.cycle_graph(6), nx.cycle_graph(range(6, 12)))
    Theirs, Ours = _climbers(mesa), _climbers(mesa_jax)
    for graph in (ring, two_rings):  # ours in this order: the second reuses the first's program
        theirs, ours = Theirs(graph), Ours(graph)
        for _ in range(20):
            theirs.step()
            ours.step()
        assert ours._mj_compiled._k > 1
        assert [(a.cell.coordinate, a.value) for a in ours.agents] == \
            [(a.cell.coordinate, a.value) for a in theirs.agents]


def test_data_collected_by_steps_run_ahead_matches_mesa():
    """A DataCollector called in the step: every step's records come from the chunk's
    stacked records, also when the frames are read in the middle of a chunk."""
    frames = []
    for base, space in ((mesa, mesa.space), (mesa_jax, js)):
        class Collecting(_piles(base, space)):
            def __init__(self):
                super().__init__()
                self.datacollector = base.DataCollector(
                    model_reporters={"pile": "pile", "n": lambda m: len(m.agents)},
                    agent_reporters={"crowd": "crowd"})

            def step(self):
                super().step()
                self.datacollector.collect(self)

        m = Collecting()
        for i in range(30):
            m.step()
            if i == 20:
                assert len(m.datacollector.get_model_vars_dataframe()) == 21  # inside a chunk
        if base is mesa_jax:
            assert m._mj_compiled._k > 1
        model_vars = m.datacollector.get_model_vars_dataframe()
        agents = m.datacollector.get_agent_vars_dataframe()
        if base is mesa:  # pandas, indexed by (Step, AgentID)
            agents = agents.reset_index()
        frames.append((list(model_vars["pile"]), list(model_vars["n"]),
                       sorted(zip(*(list(agents[c]) for c in ("Step", "AgentID", "crowd"))))))
    assert frames[1] == frames[0]
