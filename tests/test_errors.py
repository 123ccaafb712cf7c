"""Unsupported input gets an error naming the construct, the user's file:line and a fix."""

import pytest

import mesa
import mesa_jax
from models import bad
from mesa_jax import UnsupportedError

BAD_FILE = bad.__file__


def _step(agent_cls):
    model = bad.BadModel(agent_cls)
    model.step()


def _line_of(cls, text):
    import inspect

    lines, start = inspect.getsourcelines(cls)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(text)


def test_try_except_is_rejected_with_location():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.TryAgent)
    msg = str(err.value)
    assert "`try`/`except`" in msg
    assert f"{BAD_FILE}:{_line_of(bad.TryAgent, 'try:')}" in msg
    assert "Write instead:" in msg and "`if`" in msg


def test_list_append_in_traced_branch_is_rejected():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.AppendAgent)
    msg = str(err.value)
    assert "`list.append` inside a branch on a traced condition" in msg
    assert f"{BAD_FILE}:{_line_of(bad.AppendAgent, 'seen.append')}" in msg
    assert "comprehension" in msg


def test_unbounded_recursion_is_rejected():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.RecursiveAgent)
    msg = str(err.value)
    assert "recursion in `RecursiveAgent.countdown`" in msg
    assert BAD_FILE in msg
    assert "loop" in msg


def test_new_attribute_in_step_is_rejected():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.NewAttrAgent)
    msg = str(err.value)
    assert "`NewAttrAgent.brand_new`" in msg
    assert f"{BAD_FILE}:{_line_of(bad.NewAttrAgent, 'self.brand_new')}" in msg
    assert "__init__" in msg


def test_text_work_in_a_step_is_rejected():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.TextWorkAgent)
    msg = str(err.value)
    assert "`+` on a string attribute's value" in msg
    assert f"{BAD_FILE}:{_line_of(bad.TextWorkAgent, 'self.label +')}" in msg
    assert "`==`" in msg


def test_text_into_number_attribute_is_rejected():
    with pytest.raises(UnsupportedError) as err:
        _step(bad.TextIntoNumberAgent)
    msg = str(err.value)
    assert "assigning text to `TextIntoNumberAgent.x`, which does not hold text" in msg
    assert f"{BAD_FILE}:{_line_of(bad.TextIntoNumberAgent, 'many')}" in msg


def test_the_same_models_run_eagerly(eager):
    # eagerly every construct is plain Python, as in Mesa
    for cls in (bad.TryAgent, bad.AppendAgent, bad.RecursiveAgent, bad.NewAttrAgent):
        _step(cls)


def test_seed_and_rng_together_raise_like_mesa():
    with pytest.raises(ValueError) as ours:
        mesa_jax.Model(seed=1, rng=2)
    with pytest.raises(ValueError) as theirs:
        mesa.Model(seed=1, rng=2)
    assert str(ours.value) == str(theirs.value)


def test_setting_model_agents_raises_like_mesa():
    with pytest.raises(AttributeError) as ours:
        mesa_jax.Model(seed=1).agents = []
    with pytest.raises(AttributeError) as theirs:
        mesa.Model(seed=1).agents = []
    assert str(ours.value) == str(theirs.value)
