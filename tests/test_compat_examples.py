"""The compat examples (written with ``import mesa_jax as mesa``) run compiled.

Game of Life is checked cell for cell against Mesa's own example (same seed, same
initial draws); the others run a few compiled steps and check their invariants.
"""

import importlib
import warnings

import numpy as np

from compat_examples.boid_flockers.model import BoidFlockers
from compat_examples.game_of_life.model import GameOfLife
from compat_examples.schelling.model import Schelling
from compat_examples.virus_on_network.model import State, VirusOnNetwork


def test_game_of_life_compat_matches_mesas_example():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = importlib.import_module("mesa.examples.basic.conways_game_of_life.model") \
            .ConwaysGameOfLife(width=20, height=15, seed=4)
    ours = GameOfLife(width=20, height=15, seed=4)
    for _ in range(20):
        real.step()
        ours.step()
    a = {a.cell.coordinate: a.state for a in ours.agents}
    b = {c.cell.coordinate: c.state for c in real.agents}
    assert a == b
    assert list(ours.datacollector.get_model_vars_dataframe()["alive"])[-1] == sum(b.values())


def test_schelling_compat_keeps_one_agent_per_cell():
    m = Schelling(width=15, height=15, density=0.85, homophily=0.6, seed=2)
    for _ in range(5):
        m.step()
        cells = [a.cell.coordinate for a in m.agents]
        assert len(set(cells)) == len(cells)
    df = m.datacollector.get_model_vars_dataframe()
    assert df["happy"][-1] == m.happy > 0


def test_virus_compat_states_are_enum_members():
    m = VirusOnNetwork(num_nodes=40, initial_outbreak_size=4, seed=3)
    for _ in range(8):
        m.step()
    states = [a.state for a in m.agents]
    assert set(states) <= set(State)
    df = m.datacollector.get_model_vars_dataframe()
    assert (np.asarray(df["Infected"]) + np.asarray(df["Susceptible"]) + np.asarray(df["Resistant"]) == 40).all()


def test_boids_compat_flies_with_unit_directions():
    m = BoidFlockers(population_size=60, width=40, height=40, vision=6, seed=1)
    for _ in range(10):
        m.step()
    d = np.array([a.direction for a in m.agents])
    moved = [a for a in m.agents if a.neighbors]
    assert moved and all(a not in a.neighbors for a in moved)
    assert np.allclose(np.linalg.norm(d[[i for i, a in enumerate(m.agents) if a.neighbors]], axis=1), 1, atol=1e-4)
    assert 0 <= m.datacollector.get_model_vars_dataframe()["polarisation"][-1] <= 1
