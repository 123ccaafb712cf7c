"""Agent and AgentSet: Mesa's API over per-class column tables.

An ``Agent`` object is a light handle ``(table, row)``; its attributes live in the
columns of its class's :class:`~mesa_jax._table.AgentTable`. Eagerly, reading and writing
attributes reads and writes those columns. Inside a compiled step the acting agent's
``self`` is a handle whose row is a tracer, and its attributes are the frame's own values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable

import jax.numpy as jnp
import numpy as np

from ._collections import TracedList, make_agent_handle, prefix_count
from ._context import coerce, current
from .errors import MesaJaxError, UnsupportedError

__all__ = ["Agent", "AgentSet", "GroupBy"]

_HANDLE_SLOTS = ("_table", "_row", "_valid", "_pending")


def _data_descriptor(cls, name):
    for klass in cls.__mro__:
        attr = klass.__dict__.get(name)
        if attr is not None:
            if hasattr(attr, "__set__"):
                return attr
            return None
    return None


def _check_not_replaced(agent):
    """A removed agent's row may hold an agent born later (births reuse rows)."""
    t = agent._table
    uid = agent.__dict__.get("_mj_uid")
    if uid is not None and int(np.asarray(t.uid)[agent._row]) != uid:
        raise MesaJaxError(
            f"agent {uid} ({t.cls.__name__}) was removed and its row now holds a newer agent: "
            f"mesa_jax does not keep the attributes of removed agents once agents are born in "
            f"compiled steps (read what you need before removing it)")


class Agent:
    """Base class for a model agent (Mesa's ``Agent``).

    Attributes assigned in ``__init__`` become columns of the class's table (numbers,
    booleans and numpy arrays are compiled; other Python objects stay on the host).
    """

    def __init__(self, model, *args, **kwargs) -> None:
        """Create a new agent and register it with ``model``.

        Arguments:
            model: the model the agent belongs to.
            args, kwargs: passed on to ``super().__init__``.
        """
        super().__init__(*args, **kwargs)
        ctx = current()
        if ctx is not None:
            if "_table" in self.__dict__:  # a birth: its row is given (TraceContext.create_agent)
                return
            raise UnsupportedError(
                f"creating a `{type(self).__name__}` agent inside a compiled step outside "
                f"converted code", "create it in a model or agent method (`Sheep(self.model, ...)`)")
        table = model._table_for(type(self))
        uid = model._next_ids(1)
        row = int(table.add_rows(uid)[0])
        pending = self.__dict__.pop("_pending", None)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "_mj_uid", int(uid[0]))
        table.handles[row] = self
        if pending:
            for k, v in pending.items():
                setattr(self, k, v)

    # ----------------------------------------------------------- attributes
    def __setattr__(self, name, value):
        desc = _data_descriptor(type(self), name)
        if desc is not None:
            desc.__set__(self, value)
            return
        d = self.__dict__
        table = d.get("_table")
        if table is None:
            d.setdefault("_pending", {})[name] = value
            return
        ctx = current()
        if ctx is not None:
            ctx.write_attr(self, name, value)
        else:
            if table.nursery:
                _check_not_replaced(self)
            table.set(d["_row"], name, value)

    def __getattr__(self, name):
        d = self.__dict__
        table = d.get("_table")
        if table is None:
            pending = d.get("_pending", {})
            if name in pending:
                return pending[name]
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        ctx = current()
        if ctx is not None:
            return ctx.read_attr(self, name)
        if not table.has(name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        if table.nursery:
            _check_not_replaced(self)
        return table.get(d["_row"], name)

    @property
    def model(self):
        """The model this agent belongs to."""
        return self._table.model

    @model.setter
    def model(self, value):
        if value is not self._table.model:
            raise AttributeError("an agent's model cannot be changed")

    @property
    def unique_id(self) -> int:
        """The agent's id, counted from 1 per model as in Mesa."""
        t = self._table
        if current() is not None:
            return t.uid[self._row]
        uid = self.__dict__.get("_mj_uid")  # an agent's id never changes, its row may be reused
        return uid if uid is not None else int(np.asarray(t.uid)[self._row])

    @unique_id.setter
    def unique_id(self, value):
        raise AttributeError("unique_id is assigned by the model and cannot be changed")

    @property
    def pos(self):
        """Position in a ``mesa_jax.space`` grid, or None."""
        grid = self._table.grids.get("_mj_pos")
        if grid is None:
            return None
        return grid._pos_of(self)

    @pos.setter
    def pos(self, value):
        grid = self._table.grids.get("_mj_pos")
        if grid is None:
            if value is None:
                return
            raise UnsupportedError(
                "setting `agent.pos` directly without a space",
                "place the agent with `grid.place_agent(agent, pos)`")
        grid._set_pos(self, value)

    @property
    def random(self):
        """The model's ``random.Random`` (compiled: a per-agent JAX stream)."""
        return self._table.model.random

    @property
    def rng(self):
        """The model's ``numpy.random.Generator`` (compiled: a per-agent JAX stream)."""
        return self._table.model.rng

    # --------------------------------------------------------------- methods
    def remove(self) -> None:
        """Remove the agent from the model (and from its space)."""
        ctx = current()
        if ctx is not None:
            ctx.remove_agent(self)
            return
        t = self._table
        t.to_host()
        if not t.alive[self._row]:
            return
        for col, geom in t.spaces.items():
            old = int(t.cols[col][self._row])
            geom.host_move(t.model, t, self._row, old, None)
        t.alive[self._row] = False

    def step(self) -> None:
        """A single step of the agent."""

    def advance(self) -> None:
        """Second phase of a simultaneous activation."""

    @classmethod
    def create_agents(cls, model, n: int, *args, **kwargs) -> AgentSet:
        """Create ``n`` agents; each sequence argument of length ``n`` is split per agent.

        Arguments:
            model: the model.
            n: how many agents.
            args, kwargs: single values (shared) or sequences of length n (one per agent).

        Returns:
            An AgentSet of the new agents.
        """
        def per_agent(v):
            return isinstance(v, (list, np.ndarray, tuple)) and len(v) == n

        ctx = current()
        if ctx is not None and not isinstance(n, (int, np.integer)):
            raise UnsupportedError(f"`{cls.__name__}.create_agents` with a traced number of agents",
                                   "pass a Python int (a bound), and create conditionally in a loop")
        agents = []
        for i in range(n):
            a = [v[i] if per_agent(v) else v for v in args]
            k = {key: (v[i] if per_agent(v) else v) for key, v in kwargs.items()}
            agents.append(cls(model, *a, **k) if ctx is None else ctx.create_agent(cls, (model, *a), k))
        if ctx is not None:  # births in a compiled step: the new agents, as a tuple
            return tuple(agents)
        return AgentSet(agents, random=model.random)

    def __repr__(self):
        t = self.__dict__.get("_table")
        if t is None:
            return f"<{type(self).__name__} (unregistered)>"
        if current() is not None:
            return f"<{type(self).__name__} traced>"
        return f"<{type(self).__name__} {self.unique_id}>"

    def __getstate__(self):
        raise TypeError("mesa_jax agents are handles into their model's tables; pickle the model")


# ====================================================================== sets
class AgentSet:
    """An ordered collection of agents (Mesa's ``AgentSet``).

    It is stored as parts ``(table, rows)``: ``rows`` is None for "every live agent of the
    table" (a live view, as ``model.agents`` is in Mesa), an ordered numpy array of rows
    eagerly, or a boolean mask over the table inside a compiled step.
    """

    def __init__(self, agents: Iterable[Agent] = (), random=None, _parts=None):
        self.random = random
        if _parts is not None:
            self._parts = _parts
            return
        groups: dict = {}
        for a in agents:
            groups.setdefault(a._table, []).append(a._row)
        self._parts = [(t, np.asarray(rows, np.int64)) for t, rows in groups.items()]

    # ---------------------------------------------------------------- views
    def _host_parts(self):
        out = []
        for t, rows in self._parts:
            alive = np.asarray(t.alive)
            if rows is None:
                r = np.flatnonzero(alive[: t.n])
            elif isinstance(rows, np.ndarray) and rows.dtype != np.bool_:
                r = rows[alive[rows]] if len(rows) else rows
            else:
                r = np.flatnonzero(np.asarray(rows)[: t.n] & alive[: t.n])
            if t.nursery and not (isinstance(rows, np.ndarray) and rows.dtype != np.bool_):
                r = r[np.argsort(np.asarray(t.uid)[r], kind="stable")]  # creation order, as Mesa
            out.append((t, r))
        return out

    def _traced_parts(self):
        out = []
        for t, rows in self._parts:
            if rows is None:
                m = t.alive
            elif isinstance(rows, np.ndarray) and rows.dtype != np.bool_:
                m = jnp.zeros(t.cap, bool).at[rows].set(True) & t.alive
            else:
                m = rows & t.alive
            out.append((t, m))
        return out

    def _mj_traced_lists(self):
        if current() is None:
            return None
        return [TracedList(jnp.arange(t.cap), m, table=t) for t, m in self._traced_parts()]

    # ------------------------------------------------------------- basics
    def __len__(self):
        if current() is not None:
            raise UnsupportedError("Python's `len()` on an AgentSet in unconverted code",
                                   "call len() in a model or agent method")
        return int(sum(len(r) for _, r in self._host_parts()))

    def __iter__(self):
        if current() is not None:
            raise UnsupportedError(
                "iterating an AgentSet in unconverted code inside a compiled step",
                "use `agents.do(...)`, or a comprehension in a model method")
        for t, rows in self._host_parts():
            for r in rows:
                yield t.handle(r)

    def __contains__(self, agent):
        for t, rows in self._host_parts():
            if agent._table is t and agent._row in set(rows.tolist()):
                return True
        return False

    def __getitem__(self, item):
        agents = list(self)
        return agents[item]

    def __repr__(self):
        return f"AgentSet({len(self)} agents)" if current() is None else "AgentSet(traced)"

    def _new(self, parts):
        return AgentSet(random=self.random, _parts=parts)

    # ----------------------------------------------------------- selection
    def select(self, filter_func: Callable | None = None, at_most=float("inf"), inplace=False,
               agent_type=None) -> AgentSet:
        """Agents that pass ``filter_func`` (and are of ``agent_type``), at most ``at_most``."""
        if current() is not None:
            return self._traced_select(filter_func, at_most, inplace, agent_type)
        out = []
        limit = at_most if isinstance(at_most, int) or at_most == float("inf") else int(at_most * len(self))
        count = 0
        for t, rows in self._host_parts():
            if agent_type is not None and not issubclass(t.cls, agent_type):
                continue
            keep = []
            for r in rows:
                if count >= limit:
                    break
                if filter_func is None or filter_func(t.handle(r)):
                    keep.append(r)
                    count += 1
            out.append((t, np.asarray(keep, np.int64)))
        if inplace:
            self._parts = out
            return self
        return self._new(out)

    def _traced_select(self, filter_func, at_most, inplace, agent_type):
        from . import _ops

        parts = []
        for t, m in self._traced_parts():
            if agent_type is not None and not issubclass(t.cls, agent_type):
                continue
            if filter_func is not None:
                lst = TracedList(jnp.arange(t.cap), m, table=t)
                res = _ops._vectorised([lst], lambda a: a, lambda a: _ops.call(filter_func, a),
                                       False, "select")
                m = res.mask
            parts.append((t, m))
        if at_most != float("inf"):
            if not isinstance(at_most, int):
                raise UnsupportedError("`select(at_most=<fraction>)` in a compiled step",
                                       "pass an int")
            seen = 0
            new = []
            for t, m in parts:
                c = prefix_count(m) + seen
                new.append((t, m & (c <= at_most)))
                seen = seen + jnp.sum(m.astype(jnp.int32))
            parts = new
        if inplace:
            self._parts = parts
            return self
        return self._new(parts)

    def shuffle(self, inplace=False) -> AgentSet:
        """The agents in a random order."""
        if current() is not None:
            return self  # order has no meaning under parallel activation
        agents = list(self)
        self.random.shuffle(agents)
        new = AgentSet(agents, random=self.random)
        if inplace:
            self._parts = new._parts
            return self
        return new

    def sort(self, key, ascending=False, inplace=False) -> AgentSet:
        """The agents sorted by ``key`` (an attribute name or a function)."""
        if isinstance(key, str):
            key = operator.attrgetter(key)
        agents = sorted(self, key=key, reverse=not ascending)
        new = AgentSet(agents, random=self.random)
        if inplace:
            self._parts = new._parts
            return self
        return new

    # ------------------------------------------------------------- acting
    def do(self, method: str | Callable, *args, **kwargs) -> AgentSet:
        """Call ``method`` on every agent (compiled: all agents at once, see docs/porting.md)."""
        ctx = current()
        if ctx is not None:
            from ._activation import run_agents

            run_agents(ctx, self, method, args, kwargs, shuffle=False)
            return self
        for t, rows in self._host_parts():
            for r in rows:
                self._call_one(t, r, method, args, kwargs)
        return self

    def shuffle_do(self, method: str | Callable, *args, **kwargs) -> AgentSet:
        """Call ``method`` on every agent in a random order."""
        ctx = current()
        if ctx is not None:
            from ._activation import run_agents

            run_agents(ctx, self, method, args, kwargs, shuffle=True)
            return self
        order = [(t, r) for t, rows in self._host_parts() for r in rows]
        self.random.shuffle(order)
        for t, r in order:
            self._call_one(t, r, method, args, kwargs)
        return self

    @staticmethod
    def _call_one(t, r, method, args, kwargs):
        t.to_host()
        if not t.alive[r]:
            return None  # removed earlier in this round, as in Mesa
        agent = t.handle(r)
        if isinstance(method, str):
            return getattr(agent, method)(*args, **kwargs)
        return method(agent, *args, **kwargs)

    def map(self, method: str | Callable, *args, **kwargs) -> list:
        """The results of calling ``method`` on every agent."""
        ctx = current()
        if ctx is not None:
            from . import _ops

            def fn(a):
                m = getattr(a, method) if isinstance(method, str) else (lambda *x, **k: method(a, *x, **k))
                return _ops.call(m, *args, **kwargs)

            return _ops._vectorised(self._mj_traced_lists(), fn, None, False, "AgentSet.map")
        return [self._call_one(t, r, method, args, kwargs) for t, rows in self._host_parts() for r in rows]

    def get(self, attr_names, handle_missing="error", default_value=None):
        """Attribute values of every agent (a list; a list of lists for several names)."""
        ctx = current()
        if ctx is not None:
            if not isinstance(attr_names, str):
                raise UnsupportedError("`AgentSet.get` with several names in a compiled step",
                                       "call get once per attribute")
            from . import _ops

            return _ops._vectorised(self._mj_traced_lists(), lambda a: getattr(a, attr_names),
                                    None, False, "AgentSet.get")
        if handle_missing not in ("error", "default"):
            raise ValueError(f"Unknown handle_missing option: {handle_missing}")
        names = [attr_names] if isinstance(attr_names, str) else list(attr_names)
        out = []
        for t, rows in self._host_parts():
            cols = []
            for n in names:
                if t.has(n):
                    cols.append([t.get(r, n) for r in rows])
                elif handle_missing == "default":  # properties, unique_id, ... as Mesa
                    cols.append([getattr(t.handle(r), n, default_value) for r in rows])
                else:
                    cols.append([getattr(t.handle(r), n) for r in rows])
            out.extend(zip(*cols) if len(names) > 1 else cols[0])
        return [list(v) for v in out] if len(names) > 1 else out

    def set(self, attr_name: str, value) -> AgentSet:
        """Set one attribute of every agent to ``value``."""
        ctx = current()
        if ctx is not None:
            for t, m in self._traced_parts():
                col = t.cols[attr_name]
                t.cols[attr_name] = jnp.where(m, coerce(value, col[0], t, attr_name), col)
            return self
        for t, rows in self._host_parts():
            for r in rows:
                t.set(r, attr_name, value)
        return self

    def agg(self, attribute: str, func: Callable | Iterable[Callable]):
        """Aggregate an attribute over the agents with ``func`` (or several functions)."""
        if not callable(func):
            return [self.agg(attribute, f) for f in func]
        ctx = current()
        if ctx is not None:
            from . import _ops

            values = self.get(attribute)
            return _ops.call(func, values)
        return func(self.get(attribute))

    # ------------------------------------------------------------ editing
    def add(self, agent: Agent):
        if current() is not None:
            raise UnsupportedError("`AgentSet.add` in a compiled step",
                                   "use `select` to build the set you need")
        for i, (t, rows) in enumerate(self._parts):
            if t is agent._table:
                if rows is None:
                    return
                self._parts[i] = (t, np.append(rows, agent._row))
                return
        self._parts.append((agent._table, np.asarray([agent._row], np.int64)))

    def discard(self, agent: Agent):
        for i, (t, rows) in enumerate(self._parts):
            if t is agent._table and rows is not None:
                self._parts[i] = (t, rows[rows != agent._row])

    def remove(self, agent: Agent):
        if agent not in self:
            raise KeyError(agent)
        self.discard(agent)

    def groupby(self, by, result_type="agentset") -> GroupBy:
        """The agents grouped by an attribute's value or by ``by(agent)`` (Mesa's GroupBy).

        Inside a compiled step only by an Enum or bool attribute (the keys are known while
        compiling): every member is a key, with an empty group where no agent has it."""
        if current() is not None:
            return self._traced_groupby(by)
        groups: dict = {}
        for a in self:
            k = getattr(a, by) if isinstance(by, str) else by(a)
            groups.setdefault(k, []).append(a)
        if result_type == "agentset":
            return GroupBy({k: AgentSet(v, random=self.random) for k, v in groups.items()})
        return GroupBy(groups)

    def _traced_groupby(self, by):
        parts = self._traced_parts()
        kinds = {(t.enums.get(by), t.cols[by].dtype == np.bool_) if isinstance(by, str) and by in t.cols
                 else None for t, _ in parts}
        if len(kinds) != 1 or None in kinds or kinds == {(None, False)}:
            raise UnsupportedError(
                "`AgentSet.groupby` in a compiled step by anything but an Enum or bool attribute",
                "count with comprehensions (`sum(1 for a in agents if a.state == ...)`), or "
                "keep the grouping attribute an Enum")
        enum, _ = next(iter(kinds))
        keys = list(enum) if enum is not None else [False, True]
        codes = list(range(len(keys))) if enum is not None else keys
        return GroupBy({k: self._new([(t, m & (t.cols[by] == c)) for t, m in parts])
                        for k, c in zip(keys, codes)})

    def _mj_count(self):
        """How many agents (a traced count inside a compiled step)."""
        if current() is not None:
            return sum(jnp.sum(m.astype(jnp.int32)) for _, m in self._traced_parts())
        return len(self)


class GroupBy:
    """Groups of agents by key (Mesa's ``GroupBy``): ``groups``, ``map``, ``do``,
    ``count``, ``agg``; iterating gives ``(key, group)`` pairs."""

    def __init__(self, groups: dict):
        self.groups = groups

    def map(self, method, *args, **kwargs) -> dict:
        """``method`` (a callable, or the name of a method of the groups) on each group."""
        if isinstance(method, str):
            return {k: getattr(g, method)(*args, **kwargs) for k, g in self.groups.items()}
        return {k: method(g, *args, **kwargs) for k, g in self.groups.items()}

    def do(self, method, *args, **kwargs) -> GroupBy:
        self.map(method, *args, **kwargs)
        return self

    def count(self) -> dict:
        return {k: (g._mj_count() if isinstance(g, AgentSet) else len(g)) for k, g in self.groups.items()}

    def agg(self, attr_name: str, func) -> dict:
        return {k: (g.agg(attr_name, func) if isinstance(g, AgentSet)
                    else func([getattr(a, attr_name) for a in g])) for k, g in self.groups.items()}

    def __iter__(self):
        return iter(self.groups.items())

    def __len__(self):
        return len(self.groups)


def agent_handle(table, row, valid=True):
    """A handle for (table, row); eagerly the cached object, traced a fresh one."""
    if current() is None and not hasattr(row, "shape"):
        return table.handle(row)
    return make_agent_handle(table, row, valid)
