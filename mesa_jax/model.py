"""Model: Mesa's base class, with a compiled ``step``.

``Model.__init__`` runs eagerly (agents are rows appended to per-class tables). The first
``step()`` splits the model into a state pytree and a static skeleton, traces the user's
``step`` once and jits it (see :mod:`mesa_jax._compile`). ``MESA_JAX_DISABLE_JIT=1`` (or
``Model(..., jit=False)`` via :func:`mesa_jax.set_jit`) runs every step eagerly instead,
with Mesa's own sequential semantics.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import numpy as np

from ._context import current
from ._random import TracedGenerator, TracedRandom
from ._table import AgentTable
from .agent import AgentSet

__all__ = ["Model", "set_jit"]

_JIT_DEFAULT = [os.environ.get("MESA_JAX_DISABLE_JIT", "") in ("", "0")]
_STATIC_TYPES = (bool, int, float, np.bool_, np.integer, np.floating)


def set_jit(enabled: bool) -> None:
    """Compile new models' steps (True, the default) or run them eagerly (False)."""
    _JIT_DEFAULT[0] = bool(enabled)


class Model:
    """Base class for models (Mesa's ``Model``).

    Attributes:
        running: whether the model should keep running.
        steps: how many times ``step()`` has been called.
        random: a seeded ``random.Random`` (compiled steps: a JAX key stream).
        rng: a seeded ``numpy.random.Generator`` (compiled steps: a JAX key stream).
    """

    def __init__(self, *args: Any, seed=None, rng=None, **kwargs: Any) -> None:
        """Create a new model.

        Arguments:
            seed: the seed for the random number generators.
            rng: a numpy Generator or seed; pass either ``seed`` or ``rng``, not both.
        """
        super().__init__(*args, **kwargs)
        d = self.__dict__
        d["_mj_state_attrs"] = {"steps", "running"}
        d["_mj_tables"] = {}  # class -> table, ordered by class name (the state's layout)
        d["_mj_type_order"] = []  # the classes in the order their first agent was made
        d["_mj_uid"] = 0
        d["_mj_jit"] = _JIT_DEFAULT[0]
        d["_mj_compiled"] = None
        self.running = True
        self.steps = 0
        if (seed is not None) and (rng is not None):
            raise ValueError("you have to pass either rng or seed, not both")
        if seed is None:
            self.rng = np.random.default_rng(rng)
            self._rng = self.rng.bit_generator.state
            try:
                self.random = random.Random(rng)
            except TypeError:
                seed = int(self.rng.integers(np.iinfo(np.int32).max))
                self.random = random.Random(seed)
            self._seed = seed
        else:
            self.random = random.Random(seed)
            self._seed = seed
            try:
                self.rng = np.random.default_rng(seed)
            except TypeError:
                self.rng = np.random.default_rng(self.random.randint(0, sys.maxsize))
            self._rng = self.rng.bit_generator.state
        d["_user_step"] = self.step
        d["step"] = self._wrapped_step
        d["_mj_all"] = AgentSet(random=self.random, _parts=_AllParts(self))

    # ------------------------------------------------------------- stepping
    def step(self) -> None:
        """A single step. Fill in here."""

    def _wrapped_step(self, *args: Any, **kwargs: Any) -> None:
        """Run one step: compiled by default, eagerly when jit is off."""
        if current() is not None:
            raise RuntimeError("model.step() called inside a compiled step")
        if self._mj_jit and not args and not kwargs:
            from ._compile import compiled_step

            compiled_step(self).step_once()
            return
        self._mj_to_host()
        self.steps += 1
        self._user_step(*args, **kwargs)

    def run_model(self) -> None:
        """Run until ``self.running`` is False (compiled in chunks)."""
        if self._mj_jit:
            from ._compile import compiled_step

            compiled_step(self).run_until_stopped()
            return
        while self.running:
            self.step()

    def run_for(self, n: int) -> None:
        """Run ``n`` steps (compiled as one ``lax.scan`` per chunk)."""
        if self._mj_jit:
            from ._compile import compiled_step

            compiled_step(self).run(int(n))
            return
        for _ in range(int(n)):
            self.step()

    def _mj_to_host(self):
        for t in self._mj_tables.values():
            t.to_host()
        for name in list(self._mj_state_attrs):
            v = self.__dict__.get(name)
            if hasattr(v, "shape") and not isinstance(v, np.ndarray):
                arr = np.asarray(v)
                self.__dict__[name] = arr.item() if arr.ndim == 0 else arr

    # ------------------------------------------------------------- attributes
    def __setattr__(self, name, value):
        ctx = current()
        if ctx is not None and not name.startswith("_mj"):
            if isinstance(getattr(type(self), name, None), property):
                object.__setattr__(self, name, value)
                return
            ctx.write_model_attr(self, name, value)
            return
        object.__setattr__(self, name, value)

    @property
    def random(self):
        if current() is not None:
            return TracedRandom()
        return self.__dict__["random"]

    @random.setter
    def random(self, value):
        self.__dict__["random"] = value

    @property
    def rng(self):
        if current() is not None:
            return TracedGenerator()
        return self.__dict__["rng"]

    @rng.setter
    def rng(self, value):
        self.__dict__["rng"] = value

    # ------------------------------------------------------------- agents
    @property
    def agents(self) -> AgentSet:
        """All agents of the model (a live view)."""
        return self._mj_all

    @agents.setter
    def agents(self, agents: Any) -> None:
        raise AttributeError(
            "You are trying to set model.agents. In Mesa 3.0 and higher, this attribute is "
            "used by Mesa itself, so you cannot use it directly anymore."
            "Please adjust your code to use a different attribute name for custom agent storage."
        )

    @property
    def agent_types(self) -> list[type]:
        """The agent classes registered with the model."""
        return list(self._mj_type_order)

    @property
    def agents_by_type(self) -> dict:
        """One AgentSet (a live view) per agent class, in the order the classes appeared."""
        return {cls: AgentSet(random=self.random, _parts=[(self._mj_tables[cls], None)])
                for cls in self._mj_type_order}

    def _table_for(self, cls):
        t = self._mj_tables.get(cls)
        if t is None:
            if self._mj_compiled is not None:
                self._mj_compiled.invalidate()
            t = AgentTable(cls, self)
            self._mj_type_order.append(cls)
            # the state lists tables by class name, not by which class came first: models
            # whose classes appear in another order per seed (Epstein's cops and citizens)
            # have one layout and share one program
            tables = self._mj_tables
            tables[cls] = t
            ordered = sorted(tables.items(), key=lambda kv: (kv[0].__module__, kv[0].__qualname__))
            tables.clear()
            tables.update(ordered)
        return t

    def _next_ids(self, k):
        start = self._mj_uid + 1
        self.__dict__["_mj_uid"] = self._mj_uid + k
        return np.arange(start, start + k, dtype=np.int32)

    def register_agent(self, agent):
        """Agents register themselves on creation; kept for Mesa compatibility."""

    def deregister_agent(self, agent):
        """Remove an agent from the model's sets (same as ``agent.remove()``)."""
        agent.remove()

    def remove_all_agents(self):
        """Remove every agent."""
        for a in list(self.agents):
            a.remove()

    def nbytes(self) -> int:
        """Bytes of agent state held in the model's tables."""
        return sum(t.nbytes() for t in self._mj_tables.values())


class _AllParts(list):
    """The parts of ``model.agents``: every table, live (new tables appear automatically)."""

    def __init__(self, model):
        super().__init__()
        self._model = model

    def _refresh(self):
        m = self._model  # on the host: classes in the order they appeared, as in Mesa
        order = m._mj_tables.values() if current() is not None else [m._mj_tables[c] for c in m._mj_type_order]
        self[:] = [(t, None) for t in order]

    def __iter__(self):
        self._refresh()
        return super().__iter__()

    def __len__(self):
        self._refresh()
        return super().__len__()
