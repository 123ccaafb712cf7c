"""The trace context: what a compiled step sees while the user's Python runs on tracers.

A compiled step runs the user's (converted) ``Model.step`` once, with the model's state
bound to tracers. While it runs, one :class:`TraceContext` is current. It holds a stack of
:class:`Frame` objects: the model frame at the bottom, and one frame per agent while an
agent method runs vmapped over the rows of its table. A frame owns

* ``own``: the current values of the acting agent's attributes (scalars under vmap);
* ``masks``: the conditions of the traced branches being executed (writes are masked);
* ``rng``: the counter-based random stream its ``random``/``rng`` calls draw from;
* ``effects``: writes to *other* agents or to the model, applied after the vmap
  (``+=``/``-=`` as scatter-adds, ``=`` with one random winner per target).
"""

from __future__ import annotations

from enum import Enum

import jax
import jax.numpy as jnp
import numpy as np

from ._masked import MaskedRows
from ._strings import TracedStr
from ._strings import unsupported as text_unsupported
from ._table import enum_code
from .errors import register_step_error

from .errors import MesaJaxError, UnsupportedError

__all__ = ["Frame", "TraceContext", "current", "UNDEF"]

_current = None


def current():
    """The active TraceContext, or None when running eagerly."""
    return _current


class _Undefined:
    """A local variable that one branch of a traced ``if`` never assigned."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "<undefined>"

    def __bool__(self):
        raise MesaJaxError(
            "a variable assigned in only one branch of a traced `if` was used after it; "
            "assign it before the `if` (e.g. `x = 0`) so that both paths define it"
        )


UNDEF = _Undefined()


def is_traced(x):
    return isinstance(x, jax.core.Tracer)


class Effect:
    """A write to another agent (or the model) collected under vmap and applied after it."""

    __slots__ = ("kind", "table", "attr", "rows", "values", "mask")

    def __init__(self, kind, table, attr, rows, values, mask):
        self.kind, self.table, self.attr = kind, table, attr
        self.rows, self.values, self.mask = rows, values, mask


class Frame:
    """One activation: the model (``agent is None``) or one agent row under vmap."""

    def __init__(self, agent=None, table=None, own=None, rng=None, mask=None):
        self.agent = agent
        self.table = table
        self.own = own
        self.rng = rng  # traced uint32 stream state (see _random.py)
        self.draws = 0  # draws taken from the current stream state (trace-time counter)
        self.masks = [] if mask is None else [mask]
        self.effects: list[Effect] = []
        self.flags: dict = {}  # flags raised by the acting agent (ORed over rows after the vmap)
        self.defer = False  # inside a vectorised loop body: model-level writes become effects

    @property
    def mask(self):
        """AND of the active branch conditions; None means 'all true'."""
        if not self.masks:
            return None
        m = self.masks[0]
        for extra in self.masks[1:]:
            m = jnp.logical_and(m, extra)
        return m

    @property
    def branch_masked(self):
        """True inside a traced branch (beyond the row's own activity mask)."""
        base = 1 if self.agent is not None else 0
        return len(self.masks) > base

    def next_bits(self, shape=()):
        """Fresh uint32 random bits from this frame's counter-based stream."""
        from ._random import draw_bits

        self.draws += 1
        return draw_bits(self.rng, self.draws, shape)

    def next_key(self):
        """A JAX key for the rarer draws (permutations, weighted choices)."""
        return jax.random.key(self.next_bits())


_ROW_COUNT = register_step_error(
    "row_count", lambda p: ValueError(
        f"a step stored {p[0]} per-agent values in a model array of length {p[1]}; "
        f"mesa_jax keeps model arrays at the length they had in __init__"))


_UNSET_SCRATCH = register_step_error(
    "unset_scratch", lambda p: AttributeError(
        "a compiled step read an attribute holding a collection (cells, agents of several "
        "classes) that this step had not assigned for that agent; mesa_jax keeps such "
        "attributes for the step that assigns them only: assign before reading, every step"))


def _is_traced_collection(value):
    from ._collections import MultiList, TracedList

    return isinstance(value, (TracedList, MultiList)) or hasattr(value, "_mj_traced_lists")


class _Scratch:
    """An acting agent's attribute holding a traced collection for the rest of its step
    (``self.neighborhood = self.cell.get_neighborhood(...)``); never stored in a column.
    Rows whose reads find it unassigned (a branch skipped the write) raise after the step."""

    def __init__(self, value, mask):
        self.value, self.mask = value, mask

    @staticmethod
    def write(old, value, mask, name):
        if mask is None or old is None:
            return _Scratch(value, mask)
        from ._ops import select

        merged = select(mask, value, old.value, name)
        return _Scratch(merged, mask if old.mask is None else jnp.logical_or(mask, old.mask))

    def read(self, ctx, mask):
        if self.mask is not None:
            reading = jnp.asarray(True) if mask is None else mask
            ctx.report_error(_UNSET_SCRATCH, jnp.logical_and(reading, jnp.logical_not(self.mask)))
        return self.value


_SLOT_FOR_SLOT_MAX = 1 << 24  # list-column elements (64 MiB) worth widening to store lists slot for slot


def signal_default(name):
    """The neutral value of a step signal: no flag, no error, zero count."""
    if name.startswith("error:"):
        return jnp.zeros(3, jnp.int32)
    if name.startswith(("diag:", "need:")):
        return jnp.int32(0)
    return jnp.asarray(False)


def merge_signal(name, old, new):
    """Combine two values of a signal: flags OR, errors keep the first, counts add."""
    if name.startswith("error:"):
        return jnp.where(old[..., :1] > 0, old, new)
    if name.startswith("diag:"):
        return old + new
    if name.startswith("need:"):
        return jnp.maximum(old, new)
    return jnp.logical_or(old, new)


def reduce_signal(name, rows):
    """A signal kept per row (leading axis) as one value."""
    if name.startswith("error:"):
        return rows[jnp.argmax(rows[:, 0] > 0)]
    if name.startswith("diag:"):
        return jnp.sum(rows)
    if name.startswith("need:"):
        return jnp.max(rows)
    return jnp.any(rows)


def masked(mask, new, old):
    """``new`` where ``mask`` holds, else ``old`` (either may be a pytree of arrays)."""
    if mask is None:
        return new
    return jax.tree.map(lambda n, o: jnp.where(mask, n, o), new, old)


class TraceContext:
    """Everything a compiled step's trace needs; entered with ``with``."""

    def __init__(self, model, key, *, discovery=False):
        self.model = model
        self.frames = [Frame(rng=jax.random.bits(key, (), jnp.uint32))]
        self.collected = []  # (datacollector, record) pairs
        self.indexes = {}  # (space id, table id) -> cell index
        self.discovery = discovery
        self.promoted = set()  # model attributes first written in this trace
        self.model_reads = set()  # model attributes the step read (their values are baked in)
        self.own_writes = set()  # (table id, attr) the acting agents of this trace wrote
        self.origins = {}  # id(traced value) -> (table, column, value) it was read from
        self.concrete = None  # the step's input state, concrete (for host-side hints)
        self.space_arrays = {}  # name -> neighbour tables passed as data (networks)
        self.retyped = {}  # (table, attr) -> first value written into a column holding only None
        self.write_count = 0
        # births (see create_agent): rows [cap0, cap0 + nursery) of a table are its nursery
        self.nursery = {}  # table -> (cap0, rows) for this trace
        self.cursor = {}  # table -> nursery rows handed out since the last settle
        self.nursery_need = {}  # table -> most nursery rows handed out between settles
        self.loop_slots = []  # (slot index, capacity) of the vectorised loops being traced
        self.in_comprehension = 0

    def __enter__(self):
        global _current
        self._prev = _current
        _current = self
        return self

    def __exit__(self, *exc):
        global _current
        _current = self._prev
        return False

    # ---------------------------------------------------------------- frames
    @property
    def flags(self) -> dict:
        """The model frame's signals (capacity flags, errors, counters) for the host."""
        return self.frames[0].flags

    @flags.setter
    def flags(self, value):
        self.frames[0].flags = value

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def model_frame(self) -> Frame:
        return self.frames[0]

    def flag(self, name, value):
        """Raise the host-side flag ``name`` (a capacity to grow) where ``value`` holds."""
        self.signal(name, jnp.asarray(value, bool))

    def signal(self, name, value):
        """Send a value to the host with the step's outputs (see ``merge_signal``).

        Inside an agent's call it is kept per row (masked by the frame) and reduced over
        the rows after the vmap.
        """
        frame = self.frame
        if frame.agent is not None and frame.mask is not None:
            value = jnp.where(frame.mask, value, signal_default(name))
        flags = frame.flags
        old = flags.get(name)
        flags[name] = value if old is None else merge_signal(name, old, value)

    def concrete_max(self, value):
        """The largest value, over live agents, of the column ``value`` was read from
        (None when it was not read from a column): a host-side hint for a capacity."""
        origin = self.origins.get(id(value))
        if origin is None or origin[2] is not value or self.concrete is None:
            return None
        table, name = origin[0], origin[1]
        for t, ts in zip(self.model._mj_tables.values(), self.concrete["tables"]):
            if t is table and name in ts["cols"]:
                vals = np.asarray(ts["cols"][name])[np.asarray(ts["alive"])]
                return float(vals.max()) if vals.size else None
        return None

    def need(self, name, required, capacity):
        """Ask the host for capacity ``name`` of at least ``required`` (when it exceeds
        ``capacity``): the step is replayed with about 1.25x what was needed."""
        required = jnp.asarray(required, jnp.int32)
        self.signal(f"need:{name}", jnp.where(required > capacity, required, 0))

    def report_error(self, kind, cond, payload=()):
        """Raise Mesa's error ``kind`` on the host after the step if ``cond`` held anywhere
        (the state before the step is kept). ``payload``: up to two ints describing the
        first offender (e.g. agent id, cell id), given to the error's builder.
        """
        payload = jnp.asarray(payload, jnp.int32).reshape(-1)[:2]
        payload = jnp.concatenate([payload, jnp.zeros(2 - payload.shape[0], jnp.int32)])
        cond = jnp.asarray(cond)
        if cond.ndim:  # several rows at model level: the first offender
            first = jnp.argmax(cond.reshape(-1))
            payload = jnp.asarray(payload).reshape(-1, 2)[first] if payload.ndim > 1 else payload
            cond = jnp.any(cond)
        self.signal(f"error:{kind}", jnp.concatenate([cond.astype(jnp.int32)[None], payload]))

    def diagnose(self, name, count):
        """Add ``count`` to the host-side counter ``mesa_jax.diagnostics(model)[name]``."""
        self.signal(f"diag:{name}", jnp.asarray(count, jnp.int32))

    def invalidate_indexes(self):
        self.indexes.clear()

    # ------------------------------------------------------------ attributes
    def read_attr(self, handle, name):
        frame = self.frame
        table = handle._table
        born = handle.__dict__.get("_mj_born")
        if handle is frame.agent or (born is not None and name in born):
            own = frame.own if handle is frame.agent else born
            if name in own:
                value = own[name]
                if isinstance(value, _Scratch):
                    return value.read(self, frame.mask)
                target = self._list_target(table, name)
                if target is not None:
                    return self._agent_list(value, target)
                if name in table.strings or self.retyped.get((table, name)) == "text":
                    return TracedStr(value)
                if handle is frame.agent:
                    self.origins[id(value)] = (table, name, value)
                return value
        col = table.cols.get(name)
        if col is None or col.dtype == object:
            spec = self.retyped.get((table, name))
            if isinstance(spec, tuple):  # discovery: a list of agents written earlier
                return self._agent_list(jnp.full(spec[2], -1, jnp.int32), spec[1])
            if spec == "text":  # discovery: text written earlier in this step
                return TracedStr(jnp.int32(0))
            if spec is not None:  # discovery: typed by an earlier write in this step
                return jnp.zeros(spec.shape, spec.dtype)
            static = table.static_cols.get(name)
            if static is not None:
                raise UnsupportedError(
                    f"reading `{table.cls.__name__}.{name}`, which holds Python objects "
                    f"({static}) rather than numbers",
                    f"keep numbers, booleans or numpy arrays in agent attributes used by a "
                    f"compiled step (e.g. an id or a code instead of `{static}`)",
                )
            raise AttributeError(f"'{table.cls.__name__}' object has no attribute '{name}'")
        target = table.agent_lists.get(name)
        if target is not None:
            return self._agent_list(col[handle._row], target)
        if name in table.strings:
            return TracedStr(col[handle._row])
        return col[handle._row]

    @staticmethod
    def _agent_list(rows, target):
        from ._collections import TracedList

        return TracedList(rows, rows >= 0, table=target)

    def write_attr(self, handle, name, value):
        frame = self.frame
        table = handle._table
        if self._type_none_column(table, name, value):
            if handle is frame.agent:
                code = TracedStr.code_of(value)
                frame.own[name] = jnp.asarray(value if code is None else code)
            return
        target = self._list_target(table, name)
        if target is not None:
            value = self._encode_agent_list(table, name, target, value)
            if self.discovery and name not in table.agent_lists:
                if handle is frame.agent:
                    frame.own[name] = value
                return
        if handle is frame.agent:
            old = frame.own.get(name)
            if (old is None or isinstance(old, _Scratch)) and _is_traced_collection(value) \
                    and (name in table.static_cols or name not in table.cols):
                frame.own[name] = _Scratch.write(old, value, frame.mask, name)
                return
            if old is None:
                self._unknown_attr(table, name)
            frame.own[name] = masked(frame.mask, coerce(value, old, table, name), old)
            self.own_writes.add((id(table), name))
            return
        if name in table.static_cols:
            self._unknown_attr(table, name)
        col = table.cols.get(name)
        if col is None:
            self._unknown_attr(table, name)
        value = coerce(value, col[0], table, name)
        self._effect(frame, "set", table, name, handle, value)
        born = handle.__dict__.get("_mj_born")
        if born is not None:  # an agent created in this step: later reads see the write
            born[name] = masked(frame.mask, value, born[name])

    def add_attr(self, handle, name, delta):
        """``handle.name += delta``: direct on the acting agent, a scatter-add on others."""
        frame = self.frame
        table = handle._table
        if name in table.strings:
            raise text_unsupported("`+=`")
        if handle is frame.agent:
            old = frame.own.get(name)
            if old is None:
                self._unknown_attr(table, name)
            new = coerce(old + delta, old, table, name)
            frame.own[name] = masked(frame.mask, new, old)
            return
        col = table.cols.get(name)
        if col is None:
            self._unknown_attr(table, name)
        self._effect(frame, "add", table, name, handle, coerce(delta, col[0], table, name))

    def _effect(self, frame, kind, table, name, handle, value):
        valid = handle.__dict__.get("_valid", True)  # build-time handles have no flag
        mask = frame.mask
        m = valid if mask is None else jnp.logical_and(mask, valid)
        if frame.agent is None and not frame.defer:
            # model level: no vmap, apply at once (sequential semantics)
            self.apply_effects([Effect(kind, table, name, handle._row, value, m)], self.model_frame)
            return
        frame.effects.append(Effect(kind, table, name, handle._row, value, m))

    # ---------------------------------------------------------------- births
    def nursery_of(self, table):
        """(the table's own rows, its nursery rows) in this trace."""
        return self.nursery.get(table, (table.cap, 0))

    def create_agent(self, cls, args, kwargs):
        """``cls(model, ...)`` inside a step: the agent gets a nursery row, its converted
        ``__init__`` runs as the acting agent of a frame of its own (its attribute writes
        are its own columns), and what it set is written to the row as effects of the
        creating frame. ``settle_births`` moves newborns into free rows and numbers them.

        Every executed creation call hands out one nursery row per element of the batch
        it runs in (acting rows x loop slots), so rows are known inside the vmap; the
        nursery's size comes from the discovery trace."""
        from ._collections import make_agent_handle
        from ._convert import convert
        from ._random import substream

        model = args[0] if args else kwargs.get("model")
        table = self.model._mj_tables.get(cls)
        if model is not self.model or table is None:
            raise UnsupportedError(
                f"creating a `{cls.__name__}` agent inside a compiled step"
                + ("" if table is not None else f" (no `{cls.__name__}` agent existed before the step)"),
                f"create at least one `{cls.__name__}` in `Model.__init__` (its columns are made "
                f"there), passing the model as the first argument")
        if self.in_comprehension:
            raise UnsupportedError(f"creating a `{cls.__name__}` agent inside a comprehension",
                                   "create agents in a `for` loop or a plain statement")
        if any(geom.capacity is not None for geom in table.spaces.values()):
            raise UnsupportedError(
                f"creating a `{cls.__name__}` agent inside a compiled step: it lives in a "
                f"space with a capacity per cell", "create such agents on the host (run eagerly)")
        parent = self.frame
        slot, size = jnp.int32(0), 1
        if parent.agent is not None:  # acting rows: the table's own rows, not its nursery
            slot = jnp.asarray(parent.agent._row, jnp.int32)
            size = self.nursery_of(parent.table)[0]
        for i, cap in self.loop_slots:
            slot, size = slot * cap + i, size * cap
        cap0, rows = self.nursery_of(table)
        start = self.cursor.get(table, 0)
        self.cursor[table] = start + size
        self.nursery_need[table] = max(self.nursery_need.get(table, 0), start + size)
        if start + size > rows and not self.discovery:
            raise MesaJaxError("internal: the nursery is smaller than the discovery trace found")
        row = jnp.minimum(cap0 + start + slot, table.cap - 1)
        handle = make_agent_handle(table, row, True if parent.mask is None else parent.mask)
        own = {n: c[row] for n, c in table.cols.items() if c.dtype != object}
        own["__alive__"] = jnp.asarray(True)
        frame = Frame(agent=handle, table=table, own=own, rng=substream(parent.next_bits(), 1),
                      mask=parent.mask)
        self.frames.append(frame)
        try:
            init = getattr(cls.__init__, "__func__", cls.__init__)
            from ._ops import _is_user_function

            if _is_user_function(init):
                convert(init)(handle, *args, **kwargs)
            else:
                init(handle, *args, **kwargs)
        finally:
            self.frames.pop()
        for name, v in frame.flags.items():
            old = parent.flags.get(name)
            parent.flags[name] = v if old is None else merge_signal(name, old, v)
        born = jnp.logical_and(frame.own["__alive__"], True if parent.mask is None else parent.mask)
        # "put": the rows are the batch's own nursery rows, never shared (no random winner)
        effects = [Effect("put", table, n, row, frame.own[n], born) for n in frame.own]  # incl. alive
        effects[:0] = frame.effects
        object.__setattr__(handle, "_mj_born", dict(frame.own))  # what reads of it see
        if parent.agent is None and not parent.defer:
            self.apply_effects(effects, parent)
            new_rows = self.settle_births().get(table)
            if new_rows is not None:  # (None: a discovery trace, before the nursery exists)
                # created by the model itself: from here on an agent like any other
                new_row = new_rows[jnp.clip(row - cap0, 0, new_rows.shape[0] - 1)]
                object.__setattr__(handle, "_row", jnp.maximum(new_row, 0))
                object.__setattr__(handle, "_valid", new_row >= 0)
            del handle.__dict__["_mj_born"]
        else:
            parent.effects.extend(effects)
        return handle

    def settle_births(self):
        """Move the agents born since the last settle from nursery rows into free rows of
        their table (lowest first), give them the next unique ids (in nursery order), and
        empty the nursery. More newborns than free rows raises a flag: the host grows the
        table and replays the step."""
        from ._collections import prefix_count

        model = self.model
        moved = {}  # table -> new row (or -1) of each nursery row
        for table, used in list(self.cursor.items()):
            if used == 0:
                continue
            self.cursor[table] = 0
            cap0, rows = self.nursery_of(table)
            if rows == 0:  # discovery before the nursery exists
                continue
            alive = table.alive
            born, free = alive[cap0:], jnp.logical_not(alive[:cap0])
            n_born = jnp.sum(born.astype(jnp.int32))
            n_free = jnp.sum(free.astype(jnp.int32))
            self.signal(f"need:rows:{table.cls.__qualname__}", jnp.maximum(n_born - n_free, 0))
            free_rank = prefix_count(free) - 1
            row_of_rank = jnp.full(cap0, cap0, jnp.int32).at[jnp.where(free, free_rank, cap0)].set(
                jnp.arange(cap0, dtype=jnp.int32), mode="drop")
            born_rank = prefix_count(born) - 1
            dest = jnp.where(born, row_of_rank[jnp.clip(born_rank, 0, cap0 - 1)], cap0)
            dest = jnp.where(born & (born_rank < n_free), dest, cap0)

            def move(col, fill):
                head = col[:cap0].at[dest].set(col[cap0:], mode="drop")
                return jnp.concatenate([head, jnp.full((rows,) + col.shape[1:], fill, col.dtype)])

            first_uid = jnp.asarray(model.__dict__["_mj_uid"], jnp.int32)
            uid = jnp.concatenate([table.uid[:cap0], first_uid + 1 + born_rank.astype(jnp.int32)])
            table.uid = move(uid, 0)
            table.alive = move(alive, False)
            for name, col in list(table.cols.items()):
                if col.dtype != object:
                    table.cols[name] = move(col, table.fill_of(name, col.dtype))
            # rows of newborns kept in lists of agents point at their new rows
            new_row = moved[table] = jnp.where(dest < cap0, dest, -1)
            for other in model._mj_tables.values():
                for name, target in other.agent_lists.items():
                    if target is table:
                        col = other.cols[name]
                        nursery_row = (col >= cap0) & (col < cap0 + rows)
                        other.cols[name] = jnp.where(
                            nursery_row, new_row[jnp.clip(col - cap0, 0, rows - 1)], col)
            object.__setattr__(model, "_mj_uid", first_uid + n_born)
            self.promoted.add("_mj_uid")
            self.invalidate_indexes()
        return moved

    def remove_agent(self, handle):
        frame = self.frame
        if handle is frame.agent:
            old = frame.own["__alive__"]
            frame.own["__alive__"] = masked(frame.mask, jnp.zeros_like(old), old)
            return
        self._effect(frame, "set", handle._table, "__alive__", handle, jnp.asarray(False))

    def _list_target(self, table, name):
        """The agent table whose rows column ``name`` lists (a list-of-agents attribute)."""
        target = table.agent_lists.get(name)
        if target is None:
            spec = self.retyped.get((table, name))
            if isinstance(spec, tuple) and spec[0] == "agents":
                target = spec[1]
        return target

    def _encode_agent_list(self, table, name, target, value):
        """A traced list of agents as ``width`` rows (-1 = empty, holes allowed: readers
        mask ``rows >= 0``). A list with no more slots than ``width`` is stored slot for
        slot (no compaction: a scatter per agent). A longer one is compacted, valid ones
        first; more agents than ``width`` raise a flag: the host widens and replays. When
        slot-for-slot storage of such lists stays small (rows x slots <= 2^24) the host is
        asked once to widen the column to the list's capacity: compacting costs a prefix
        count over every slot each step (4,000 boids with all-pairs lists: 113 -> 58 ms)."""
        from ._collections import TracedList

        if isinstance(value, (list, tuple)) and not value:
            value = TracedList(jnp.zeros(1, jnp.int32), jnp.zeros(1, bool), table=target)
        if not isinstance(value, TracedList) or value.table is not target:
            raise UnsupportedError(
                f"assigning something other than a list of `{target.cls.__name__}` agents to "
                f"`{table.cls.__name__}.{name}`", "keep one kind of value per attribute")
        width = table.cols[name].shape[1] if name in table.agent_lists else self.retyped[(table, name)][2]
        if value.capacity <= width:
            rows = jnp.where(value.mask, value.values, -1).astype(jnp.int32)
            return jnp.concatenate([rows, jnp.full(width - value.capacity, -1, jnp.int32)])
        lst = value.compacted()
        n = lst.count()
        vals = lst.values
        if lst.capacity < width:
            vals = jnp.concatenate([vals, jnp.full(width - lst.capacity, -1, vals.dtype)])
        rows = jnp.where(jnp.arange(width) < n, vals[:width], -1).astype(jnp.int32)
        flag = f"listcol:{table.cls.__name__}.{name}"
        if table.cap * value.capacity <= _SLOT_FOR_SLOT_MAX:
            table.list_flags[flag] = (name, value.capacity)
            self.flag(flag, True)
        else:
            table.list_flags[flag] = (name, None)
            self.flag(flag, n > width)
        return rows

    def _type_none_column(self, table, name, value):
        """During discovery, a write into a column that holds only None gives it a type.

        (Mesa models often write ``self._next_state = None`` in ``__init__``.) The host
        turns the column into a numeric one before the real trace.
        """
        if not self.discovery:
            return False
        static = table.static_cols.get(name)
        if static == "emptylist" and (table, name) not in self.retyped:
            from ._collections import TracedList

            if isinstance(value, TracedList) and value.table is not None:
                # a list of agents: kept as rows, as wide as the first list written (or
                # the longest list it holds)
                col = table.cols[name]
                longest = max([len(v) for v in col[: table.n] if isinstance(v, list)], default=0)
                self.retyped[(table, name)] = ("agents", value.table, max(1, value.capacity, longest))
                return False  # written (encoded) by the caller
        if static != "None":
            return False
        if isinstance(value, (str, TracedStr)):  # text: interned codes (see _strings)
            self.retyped.setdefault((table, name), "text")
            return True
        if isinstance(value, (jax.Array, np.ndarray, bool, int, float, np.generic)):
            self.retyped.setdefault((table, name), jax.ShapeDtypeStruct(jnp.shape(value), jnp.result_type(value)))
            return True
        return False

    @staticmethod
    def _unknown_attr(table, name):
        static = table.static_cols.get(name)
        if static is not None:
            raise UnsupportedError(
                f"writing `{table.cls.__name__}.{name}`, which holds Python objects ({static})",
                "keep numbers, booleans or numpy arrays in attributes a compiled step writes")
        raise UnsupportedError(
            f"creating the new attribute `{table.cls.__name__}.{name}` inside a step",
            f"give every attribute a value in `{table.cls.__name__}.__init__` "
            f"(e.g. `self.{name} = 0`), so that it has a column before the model runs",
        )

    # ------------------------------------------------------------ model state
    def write_model_attr(self, model, name, value):
        frame = self.frame
        if frame.defer:
            raise UnsupportedError(
                f"plain assignment `self.{name} = ...` inside a `for` loop over a traced collection",
                f"`self.{name} += value` (summed over the iterations), or assign after the loop")
        if frame.agent is not None:
            raise UnsupportedError(
                f"plain assignment `self.model.{name} = ...` from an agent's step",
                f"`self.model.{name} += value` (summed over all agents), or compute it in "
                f"`Model.step` after the agents act",
            )
        self.write_count += 1
        if name not in model._mj_state_attrs:
            self.promoted.add(name)
        old = model.__dict__.get(name)
        if isinstance(value, MaskedRows):
            value = self._fit_rows(name, value, old)
        if frame.mask is not None and old is not None:
            value = masked(frame.mask, jnp.asarray(value), jnp.asarray(old))
        object.__setattr__(model, name, value)

    def _fit_rows(self, name, rows, old):
        """A per-agent array (``np.array([... for a in self.agents])``) kept in a model
        attribute holding an array: its rows, in order, in the attribute's length (a step
        producing another number of rows raises after the step)."""
        if not hasattr(old, "shape") or not old.shape:
            raise UnsupportedError(
                f"storing a per-agent array in `self.{name}`, which does not hold an array",
                f"give `self.{name}` an array of the right length in `__init__` "
                f"(e.g. `np.zeros(n)`)")
        m = old.shape[0]
        from ._collections import TracedList

        lst = TracedList(rows.data, rows.mask).compacted()
        data = lst.values
        if data.shape[0] < m:
            data = jnp.concatenate([data, jnp.zeros((m - data.shape[0],) + data.shape[1:], data.dtype)])
        self.report_error(_ROW_COUNT, lst.count() != m, [lst.count(), m])
        return data[:m]

    def add_model_attr(self, model, name, delta):
        frame = self.frame
        if frame.agent is None and not frame.defer:
            self.write_model_attr(model, name, getattr(model, name) + delta)
            return
        if name not in model._mj_state_attrs:
            self.promoted.add(name)
        frame.effects.append(Effect("model_add", None, name, None, delta, frame.mask))

    # -------------------------------------------------------------- effects
    def apply_effects(self, effects, frame):
        """Apply effects (batched over rows, or scalars at model level) to the columns."""
        model = self.model
        for e in effects:
            if e.kind == "model_add":
                v = jnp.asarray(e.values)
                if e.mask is not None:
                    v = jnp.where(jnp.broadcast_to(e.mask, v.shape), v, jnp.zeros_like(v))
                total = jnp.sum(v)
                old = model.__dict__.get(e.attr)
                if old is None:
                    raise AttributeError(f"model has no attribute '{e.attr}'")
                object.__setattr__(model, e.attr, jnp.asarray(old) + total.astype(jnp.asarray(old).dtype))
                continue
            table = e.table
            if e.attr == "__alive__":
                col = table.alive
            else:
                col = table.cols[e.attr]
            rows = jnp.ravel(e.rows)
            mask = jnp.ravel(jnp.broadcast_to(e.mask, jnp.shape(e.rows)))
            vals = jnp.asarray(e.values)
            vals = jnp.reshape(jnp.broadcast_to(vals, jnp.shape(e.rows) + col.shape[1:]), (-1,) + col.shape[1:])
            cap = col.shape[0]
            safe_rows = jnp.where(mask, rows, cap)
            if e.kind == "add":
                col = col.at[safe_rows].add(vals.astype(col.dtype), mode="drop")
            elif e.kind == "put":  # rows known to be distinct
                col = col.at[safe_rows].set(vals.astype(col.dtype), mode="drop")
            else:  # "set": one random winner per target row
                prio = (frame.next_bits(rows.shape) >> 2).astype(jnp.int32)
                prio = jnp.where(mask, prio, -1)
                best = jnp.full((cap,), -1, jnp.int32).at[safe_rows].max(prio, mode="drop")
                won = mask & (best[jnp.clip(rows, 0, cap - 1)] == prio)
                col = col.at[jnp.where(won, rows, cap)].set(vals.astype(col.dtype), mode="drop")
            if e.attr == "__alive__":
                table.alive = col
            else:
                table.cols[e.attr] = col


def coerce(value, like, table, name):
    """Cast a traced write to its column's dtype; refuse changes that would lose meaning."""
    if isinstance(value, Enum):
        if table.enums.get(name) is not type(value):
            raise UnsupportedError(
                f"assigning `{value!r}` to `{table.cls.__name__}.{name}`, which does not hold "
                f"members of `{type(value).__name__}`",
                "keep one Enum class per attribute, set in `__init__`")
        value = enum_code(value)
    code = TracedStr.code_of(value)
    if (code is not None) != (name in table.strings):
        what = "text" if code is not None else f"a {type(value).__name__}"
        raise UnsupportedError(
            f"assigning {what} to `{table.cls.__name__}.{name}`, which "
            f"{'holds text' if name in table.strings else 'does not hold text'}",
            "keep one kind of value per attribute, set in `__init__`")
    if code is not None:
        value = code
    like_dtype = jnp.result_type(like)
    value = jnp.asarray(value)
    if value.dtype == like_dtype:
        return value
    if jnp.issubdtype(like_dtype, jnp.integer) and jnp.issubdtype(value.dtype, jnp.floating):
        ctx = current()
        if ctx is not None and ctx.discovery and name in table.cols and not name.startswith("_mj_") \
                and name not in table.enums and name not in table.strings:
            # as in Python, an int attribute given a float holds floats: the host widens the
            # column to float32 before the step is traced for real
            ctx.retyped.setdefault((table, name), "float")
            return value
        raise UnsupportedError(
            f"assigning a float to `{table.cls.__name__}.{name}`, whose column holds integers",
            f"start it as a float in `__init__` (e.g. `self.{name} = 0.0`), or round "
            f"explicitly (`int(...)`)",
        )
    return value.astype(like_dtype)


def np_dtype_of(x):
    return np.dtype(jnp.result_type(x))
