"""Capacity claims, traced radii, networks, Enum attributes and converted try/lambda,
each checked against what Mesa (or plain counting) gives."""

import numpy as np
import pytest

import mesa_jax
from models.spaces import Crowd, Gossip, Mood, Radii


def _cells(model):
    return [a.cell.coordinate for a in model.agents]


@pytest.mark.parametrize("method", ["jump", "step_to_neighbour"])
def test_claims_never_overfill_a_capacity_one_cell(method):
    # 40 agents on 49 cells: nearly every move collides with another one
    m = Crowd(n=40, side=7, method=method, seed=3)
    moved = 0
    for _ in range(15):
        before = _cells(m)
        m.step()
        after = _cells(m)
        assert None not in after
        assert len(set(after)) == len(after) == 40
        moved += sum(a != b for a, b in zip(before, after))
    assert moved > 40  # agents do move (claims are not simply all refused)
    assert "unresolved_claims" in mesa_jax.diagnostics(m)


def test_claims_rounds_can_be_limited_and_leftovers_are_counted():
    mesa_jax.set_claim_rounds(1)
    try:
        m = Crowd(n=44, side=7, method="jump", seed=5)
        m.step()
        assert len(set(_cells(m))) == 44
        assert mesa_jax.diagnostics(m)["unresolved_claims"] > 0
    finally:
        mesa_jax.set_claim_rounds(8)


def test_moving_into_a_full_cell_raises_mesas_error_after_the_step():
    m = Crowd(n=10, side=7, method="into_occupied", seed=1)
    before = _cells(m)
    with pytest.raises(Exception, match="ERROR: Cell is full"):
        m.step()
    assert _cells(m) == before  # nothing of the failed step was kept


def test_choice_from_an_empty_list_raises_indexerror_after_the_step():
    m = Crowd(n=49, side=7, method="step_anywhere_near", seed=2)  # a full grid
    with pytest.raises(IndexError, match="Cannot choose from an empty sequence"):
        m.step()


def test_radius_from_an_attribute_is_grown_and_replayed():
    for radius in (1, 2, 3):
        m = Radii(radius=radius, seed=4)
        m.step()
        occupied = {a.cell.coordinate: a for a in m.agents}
        for a in m.agents:
            x, y = a.cell.coordinate
            expect = sum(1 for (u, v) in occupied
                         if max(abs(u - x), abs(v - y)) <= radius and (u, v) != (x, y))
            assert a.seen == expect


def test_network_enum_try_and_lambda_reporters():
    m = Gossip(seed=1)
    m.run_for(3) if hasattr(m, "run_for") else [m.step() for _ in range(3)]
    moods = [a.mood for a in m.agents]
    assert all(isinstance(x, Mood) for x in moods)
    # on a path 0-1-2-3-4-5 anger spreads one node per step from node 0
    assert moods == [Mood.ANGRY] * 4 + [Mood.CALM] * 2
    df = m.datacollector.get_model_vars_dataframe()
    assert list(df["angry"]) == [1, 2, 3]  # `last` is set from the mood at the start of the step
    assert np.allclose(df["share"], [2 / 4, 3 / 3, 4 / 2])
    for _ in range(3):
        m.step()
    df = m.datacollector.get_model_vars_dataframe()
    assert df["share"][-1] == -1.0  # the except branch: everybody angry, division by zero
