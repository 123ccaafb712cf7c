"""AgentTable: one agent class's state as columns (one row per agent).

Build phase: numpy columns that grow by doubling. After the first compiled step the
columns are device arrays; an eager write brings them back to the host first.
"""

from __future__ import annotations

import weakref
from enum import Enum

import numpy as np

from . import _strings

__all__ = ["AgentTable", "column_dtype"]

# Attributes kept by mesa_jax itself (positions in a space); never user columns.
_INTERNAL_PREFIX = "_mj_"
_KNOWN_CAPS: dict = {}  # (model class, agent class) -> row counts tables were fitted to


def enum_code(member):
    """An Enum member's code in a column: its position in its class."""
    return list(type(member)).index(member)


def column_dtype(value):
    """The column dtype and per-row shape for a first value, or (object, ()) for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_), ()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return np.dtype(np.int32), ()
    if isinstance(value, (float, np.floating)):
        return np.dtype(np.float32), ()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        kind = value.dtype.kind
        dt = {"b": np.bool_, "i": np.int32, "u": np.int32, "f": np.float32}[kind]
        return np.dtype(dt), value.shape
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.ndarray):
        # a device array (jax) assigned eagerly
        arr = np.asarray(value)
        return column_dtype(arr if arr.ndim else arr[()])
    return np.dtype(object), ()


def _fill_value(name, dtype):
    """What an unset row holds: None (objects), -1 (positions: nowhere), else zero."""
    if dtype == object:
        return None
    if name.startswith(_INTERNAL_PREFIX):
        return -1
    return 0


def _to_python(value, dtype):
    if dtype == np.bool_:
        return bool(value)
    if dtype.kind == "i":
        return int(value)
    if dtype.kind == "f":
        return float(value)
    return value


class AgentVector(np.ndarray):
    """An agent's vector attribute read on the host (``agent.direction``).

    A Mesa agent holds the array itself, so ``agent.v[0] = 1`` or ``v = agent.v; v *= 2``
    change the agent. Here the agent's values live in a column, and a view into it would
    also change when the attribute is later reassigned (``old = a.v; a.v = new`` must
    leave ``old`` alone). So this is a copy whose item assignment and in-place arithmetic
    are written back to the agent; its memory is read-only otherwise, so other writes
    (through a slice, ``fill``, ``np.copyto``) raise numpy's read-only error instead of
    being lost.
    """

    def __array_finalize__(self, obj):
        self._mj_owner = None  # views and results made from it write nowhere

    @classmethod
    def of(cls, table, row, name, values):
        v = np.array(values).view(cls)
        v.flags.writeable = False
        v._mj_owner = (table, row, name)
        return v

    def _write(self, op):
        if self._mj_owner is None:  # a copy (`.astype`) is free; a view is not
            if not self.flags.writeable:
                raise ValueError("assignment destination is read-only (a part of an agent's "
                                 "vector attribute: assign the whole attribute instead)")
            op(self.view(np.ndarray))
            return
        self.flags.writeable = True
        try:
            op(self.view(np.ndarray))
        finally:
            self.flags.writeable = False
        table, row, name = self._mj_owner
        table.set(row, name, np.array(self.view(np.ndarray)))

    def __setitem__(self, key, value):
        self._write(lambda a: a.__setitem__(key, value))

    def fill(self, value):
        self._write(lambda a: a.fill(value))

    def sort(self, *args, **kwargs):
        self._write(lambda a: a.sort(*args, **kwargs))

    def copy(self, order="C"):
        return np.array(self.view(np.ndarray), order=order)

    def __repr__(self):
        return repr(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, AgentVector) else x for x in inputs]
        if out is None:
            return getattr(ufunc, method)(*plain, **kwargs)
        mine = [o for o in out if isinstance(o, AgentVector)]
        if len(mine) != 1 or len(out) != 1:
            return NotImplemented
        target = mine[0]
        result = []
        target._write(lambda a: result.append(getattr(ufunc, method)(*plain, out=(a,), **kwargs)))
        return target


class _Watched:
    """A table attribute whose every read and write first tells the table's watcher (the
    CompiledStep serving steps run ahead) that the host touches the columns."""

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, table, owner=None):
        if table is None:
            return self
        if table.ahead is not None:
            table.ahead.touch()
        return table.__dict__[self.slot]

    def __set__(self, table, value):
        if table.ahead is not None:
            table.ahead.touch()
        table.__dict__[self.slot] = value


class AgentTable:
    """Columns of one agent class: ``alive``, ``unique_id`` and one column per attribute."""

    def __init__(self, cls, model):
        self.ahead = None  # the CompiledStep serving steps run ahead (see _compile): told of touches
        self.cls = cls
        self.model = model
        self.n = 0
        self.cap = 16
        self.alive = np.zeros(self.cap, np.bool_)
        self.uid = np.zeros(self.cap, np.int32)
        self.cols: dict[str, np.ndarray] = {}
        self.handles = weakref.WeakValueDictionary()
        self.spaces: dict = {}  # position column name -> GridGeometry
        self.grids: dict = {}  # position column name -> the grid object
        self.static_cols: dict = {}
        self.static_key = None  # what static_cols was computed from (see _compile.split)
        self.host_version = 0  # bumped by every host-side write
        self.enums: dict = {}  # column name -> Enum class whose members it holds as codes
        self.strings: set = set()  # columns holding text as interned codes (see _strings)
        self.agent_lists: dict = {}  # column name -> table whose rows it lists ([cap, width], -1 pad)
        self.list_flags: dict = {}  # overflow flag -> (list column, width asked or None: double)
        self.fitted = False  # spare rows trimmed once (see fit)
        self.nursery = 0  # rows a compiled step adds for agents born in it (see create_agent)

    # Steps run ahead in a compiled chunk leave the columns where they were until the host
    # looks: every read or write of them first catches them up with the last step the user
    # asked for (see CompiledStep.touch).
    alive = _Watched()
    uid = _Watched()
    cols = _Watched()

    # ----------------------------------------------------------------- rows
    def fill_of(self, name, dtype):
        """What an empty row of column ``name`` holds (-1 for rows of agents: none)."""
        return -1 if name in self.agent_lists else _fill_value(name, dtype)

    def to_device(self):
        """Numeric columns, ids and the alive mask as device arrays (objects stay)."""
        import jax.numpy as jnp

        self.alive, self.uid = jnp.asarray(self.alive), jnp.asarray(self.uid)
        self.cols = {k: (jnp.asarray(v) if v.dtype != object else v) for k, v in self.cols.items()}

    def _grow(self, need):
        if need <= self.cap:
            return
        self.to_host()
        cap = self.cap
        while cap < need:
            cap *= 2
        self.alive = np.concatenate([self.alive, np.zeros(cap - self.cap, np.bool_)])
        self.uid = np.concatenate([self.uid, np.zeros(cap - self.cap, np.int32)])
        for name, col in self.cols.items():
            pad = np.empty((cap - self.cap,) + col.shape[1:], col.dtype)
            pad[...] = self.fill_of(name, col.dtype)
            self.cols[name] = np.concatenate([col, pad])
        self.cap = cap

    def fit(self):
        """Trim the spare rows that doubling left (100,000 agents would sit in 131,072 rows)
        to at most 1/16 of the count, the first time the columns go to the device: compiled
        steps cost in proportion to the rows. Rows past ``n`` never held an agent. Only once:
        agents added later grow the table by doubling again (few recompiles)."""
        if self.fitted:
            return
        self.fitted = True
        fitted = max(16, -(-self.n // 16) * 16)
        step = max(16, 1 << max(0, fitted.bit_length() - 5))
        fitted = -(-fitted // step) * step
        # a size an earlier model of this class took, if near: another seed whose count
        # differs a little then has the same shape and shares that model's program
        known = _KNOWN_CAPS.setdefault((type(self.model), self.cls), set())
        near = [c for c in known if self.n <= c <= min(self.cap, fitted + max(64, fitted // 4))]
        fitted = min(near) if near else fitted
        if not self.on_device and fitted < self.cap:
            self.alive = self.alive[:fitted]
            self.uid = self.uid[:fitted]
            self.cols = {k: v[:fitted] for k, v in self.cols.items()}
            self.cap = fitted
        known.add(self.cap)

    def add_rows(self, uids):
        """Append rows for new agents; returns their row indices."""
        self.to_host()
        k = len(uids)
        if self.nursery and self.n + k > self.cap:  # births use any free row: so does the host
            free = np.flatnonzero(~self.alive[: self.n])[:k]
            if len(free) == k:
                self.alive[free] = True
                self.uid[free] = uids
                for name, col in self.cols.items():
                    col[free] = self.fill_of(name, col.dtype)
                return free
        self._grow(self.n + k)
        rows = np.arange(self.n, self.n + k)
        self.alive[rows] = True
        self.uid[rows] = uids
        self.n += k
        return rows

    @property
    def on_device(self):
        return not isinstance(self.alive, np.ndarray)

    def to_host(self):
        """Make every column a writable numpy array (after a compiled step they live on device)."""
        if not self.on_device:
            return
        self.alive = np.array(self.alive)
        self.uid = np.array(self.uid)
        self.cols = {k: np.array(v) for k, v in self.cols.items()}

    # ------------------------------------------------------------ columns
    def has(self, name):
        return name in self.cols

    def get(self, row, name):
        col = self.cols[name]
        enum = self.enums.get(name)
        target = self.agent_lists.get(name)
        # a device column is read through its host copy (made once per array, cached)
        value = np.asarray(col)[row]
        if col.ndim > 1 and col.dtype != object and target is None and enum is None:
            return AgentVector.of(self, row, name, value)
        if enum is not None:
            return list(enum)[int(value)]
        if name in self.strings:
            return _strings.text(value)
        if target is not None:
            return [target.handle(r) for r in np.asarray(value).tolist() if r >= 0]
        if col.dtype == object:
            return value
        return _to_python(value, col.dtype)

    def set(self, row, name, value):
        self.to_host()
        self.host_version += 1
        value = self._encode(name, value)
        col = self.cols.get(name)
        if col is None:
            dtype, shape = column_dtype(value)
            col = np.empty((self.cap,) + shape, dtype)
            col[...] = _fill_value(name, dtype)
            self.cols[name] = col
        elif col.dtype != object:
            dtype, shape = column_dtype(value)
            if dtype == object or shape != col.shape[1:]:
                col = col.astype(object)
                self.cols[name] = col
            elif dtype != col.dtype and np.result_type(dtype, col.dtype) != col.dtype:
                # Python promotes int to float on assignment; so does the column, on the host.
                col = col.astype(np.result_type(dtype, col.dtype))
                self.cols[name] = col
        if col.dtype == object:
            col[row] = value
        else:
            col[row] = value

    def _encode(self, name, value):
        """Enum members are kept as codes in an int column (one Enum class per column),
        text as interned codes (a column of strings only); lists of agents in a list
        column as their rows."""
        target = self.agent_lists.get(name)
        if target is not None and isinstance(value, (list, tuple)) and \
                all(getattr(a, "_table", None) is target for a in value):
            width = self.cols[name].shape[1]
            if len(value) > width:
                self.resize_list_column(name, max(len(value), 2 * width))
                width = self.cols[name].shape[1]
            rows = np.full(width, -1, np.int32)
            rows[: len(value)] = [a._row for a in value]
            return rows
        enum = self.enums.get(name)
        if isinstance(value, Enum):
            if enum is None and name not in self.cols:
                self.enums[name] = enum = type(value)
            if enum is type(value):
                return np.int32(enum_code(value))
        if enum is not None:  # something else written into an Enum column: keep objects
            members = list(enum)
            col = self.cols[name]
            self.cols[name] = np.array([members[int(c)] for c in col] + [], dtype=object)
            del self.enums[name]
        if isinstance(value, str) and (name in self.strings or name not in self.cols):
            self.strings.add(name)
            return np.int32(_strings.intern(value))
        if name in self.strings:  # something else written into a text column: keep objects
            self.cols[name] = _strings.texts(self.cols[name])
            self.strings.discard(name)
        return value

    def retype_list_column(self, name, target, width):
        """Turn a column of lists of agents into a list-of-agents column ``[cap, width]``
        (wider when a list filled before the first step is longer)."""
        was_device = self.on_device
        self.to_host()
        old = self.cols[name]
        longest = max((len(x) for x in old[: self.n] if isinstance(x, list)), default=0)
        new = np.full((self.cap, max(int(width), longest)), -1, np.int32)
        for r, lst in enumerate(old[: self.n]):
            if isinstance(lst, list) and lst:
                new[r, : len(lst)] = [a._row for a in lst]
        self.cols[name] = new
        self.agent_lists[name] = target
        self.static_cols.pop(name, None)
        if was_device:
            import jax.numpy as jnp

            self.cols[name] = jnp.asarray(self.cols[name])

    def resize_list_column(self, name, width):
        """Widen a list-of-agents column (its lists stay as they are)."""
        was_device = self.on_device
        self.to_host()
        col = self.cols[name]
        if width > col.shape[1]:
            pad = np.full((col.shape[0], width - col.shape[1]), -1, np.int32)
            self.cols[name] = np.concatenate([col, pad], axis=1)
        if was_device:
            import jax.numpy as jnp

            self.cols[name] = jnp.asarray(self.cols[name])

    def retype_none_column(self, name, dtype, shape, fill=0):
        """Turn a column that holds only None into a numeric one (rows read as ``fill``)."""
        dtype, _ = column_dtype(np.zeros((), dtype)[()])
        was_device = self.on_device
        self.to_host()
        self.cols[name] = np.full((self.cap,) + tuple(shape), fill, dtype)
        self.static_cols.pop(name, None)
        if was_device:
            import jax.numpy as jnp

            self.cols[name] = jnp.asarray(self.cols[name])

    def promote_column(self, name):
        """An int column a step writes floats into holds float32 from now on (Python's int
        attribute becomes a float the same way)."""
        self.cols[name] = self.cols[name].astype(np.float32)
        self.host_version += 1

    def retype_text_column(self, name):
        """Turn a column that holds only None into a text one (rows read as "")."""
        self.retype_none_column(name, np.int32, (), fill=_strings.intern(""))
        self.strings.add(name)

    def alive_rows(self):
        alive = np.asarray(self.alive)
        return np.flatnonzero(alive[: self.n])

    def handle(self, row):
        """The agent object for a row (the same object while anybody holds it)."""
        row = int(row)
        h = self.handles.get(row)
        uid = None
        if self.nursery and h is not None:  # rows of dead agents take newborns in steps
            uid = int(np.asarray(self.uid)[row])
            if h.__dict__.get("_mj_uid") != uid:
                h = None
        if h is None:
            h = object.__new__(self.cls)
            object.__setattr__(h, "_table", self)
            object.__setattr__(h, "_row", row)
            object.__setattr__(h, "_mj_uid", int(np.asarray(self.uid)[row]) if uid is None else uid)
            self.handles[row] = h
        return h

    def nbytes(self):
        """Bytes held by this table's columns (numeric columns only)."""
        total = np.asarray(self.alive).nbytes + np.asarray(self.uid).nbytes
        for col in self.cols.values():
            if getattr(col, "dtype", None) != object:
                total += col.size * col.dtype.itemsize
        return total
