"""Traced collections: fixed-capacity padded arrays with a validity mask.

A Python list inside a compiled step (``cell.agents``, a comprehension over agents, a
neighbourhood) becomes a :class:`TracedList`: ``values`` (a pytree whose leaves have a
leading axis of the list's capacity) and ``mask`` (which slots hold an element). Lists of
agents keep their rows in ``values`` and the agent table in ``table``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .errors import UnsupportedError

__all__ = ["TracedList", "make_agent_handle"]


def prefix_count(mask):
    """Inclusive running count of ``mask`` along its last axis (int32).

    Short lists (per-agent cell contents, neighbourhoods: <= 64 slots) use a product with
    a triangular matrix: on the CPU it is several times faster than ``cumsum`` over a
    small minor axis once vmapped over 10^5 agents. Longer ones (candidate lists of
    radius queries, up to 4096) take two such products: within blocks of 16, then across.
    Longer still (every cell of a grid): products within blocks of 64, then the same over
    the blocks' totals (XLA's ``cumsum`` on the CPU is a reduce-window: over 10^4 cells
    ~35 us; Schelling's claim rounds spent 10-20% of the step there).
    """
    m = jnp.asarray(mask)
    if m.shape[-1] >= 1 << 24:  # float32 running sums would no longer be exact
        return jnp.cumsum(m.astype(jnp.int32), axis=-1)
    return _running_sum(m.astype(jnp.float32))


def _running_sum(x):
    """Inclusive running sum along the last axis of float32 ``x`` holding small whole
    numbers (exact while the sums stay below 2^24), as int32."""
    k = x.shape[-1]
    if k <= 64:
        return jnp.round(x @ jnp.triu(jnp.ones((k, k), jnp.float32))).astype(jnp.int32)
    b = 16 if k <= 4096 else 64
    nb = -(-k // b)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, nb * b - k)])
    inner = x.reshape(x.shape[:-1] + (nb, b)) @ jnp.triu(jnp.ones((b, b), jnp.float32))
    totals = inner[..., -1]
    if nb <= 4096 // 16:  # the blocks before: one more product
        before = totals @ jnp.triu(jnp.ones((nb, nb), jnp.float32), 1)
        out = jnp.round(inner + before[..., None]).astype(jnp.int32)
    else:
        before = _running_sum(totals) - jnp.round(totals).astype(jnp.int32)
        out = jnp.round(inner).astype(jnp.int32) + before[..., None]
    return out.reshape(out.shape[:-2] + (nb * b,))[..., :k]


def make_agent_handle(table, row, valid=True):
    """A light handle to (table, row) whose row may be a tracer."""
    h = object.__new__(table.cls)
    object.__setattr__(h, "_table", table)
    object.__setattr__(h, "_row", row)
    object.__setattr__(h, "_valid", valid)
    return h


class TracedList:
    """A list of fixed capacity inside a compiled step.

    ``table`` is set for lists of agents (``values`` are row numbers); ``kind`` may name
    another element type with a ``wrap`` function (e.g. cells) that turns one value into an
    element object.
    """

    def __init__(self, values, mask, table=None, wrap=None, compact=False):
        self.values = values
        self.mask = mask
        self.table = table
        self.wrap = wrap
        self.compact = compact  # valid elements come first, in order

    # ----------------------------------------------------------- basics
    @property
    def capacity(self):
        return self.mask.shape[0]

    def __len__(self):
        raise UnsupportedError(
            "Python's `len()` on a traced list outside converted code",
            "call `len(...)` inside the model or agent methods mesa_jax compiles",
        )

    def count(self):
        return jnp.sum(self.mask.astype(jnp.int32))

    def any(self):
        # the count, not jnp.any: a step testing `if not neighbors:` usually also takes
        # `len(neighbors)`, and XLA then reduces the mask once (Boids: one [400, 400]
        # reduction fewer, program 3-6% faster in a same-process A/B)
        return self.count() > 0

    def __bool__(self):
        raise UnsupportedError(
            "the truth value of a traced list outside converted code",
            "test it inside a method mesa_jax converts (`if cellmates:`)",
        )

    def __iter__(self):
        raise UnsupportedError(
            "iterating a traced list in unconverted code",
            "iterate it in a model or agent method (mesa_jax converts those), or use a "
            "comprehension",
        )

    def element(self, i, valid=None):
        """The element at slot ``i`` (a possibly traced index)."""
        v = jax.tree.map(lambda a: a[i], self.values)
        ok = self.mask[i] if valid is None else valid
        if self.table is not None:
            return make_agent_handle(self.table, v, ok)
        if self.wrap is not None:
            return self.wrap(v, ok)
        return v

    def nth_valid(self, k):
        """Slot of the k-th (0-based) valid element."""
        if self.compact:
            return k
        c = prefix_count(self.mask)
        return jnp.argmax(c > k)

    def compacted(self):
        """The same list with the valid elements first, in their order."""
        if self.compact:
            return self
        cap = self.capacity
        pos = prefix_count(self.mask) - 1
        dest = jnp.where(self.mask, pos, cap)
        n = self.count()

        def pack(a):
            out = jnp.zeros_like(a)
            return out.at[dest].set(a, mode="drop")

        return TracedList(
            jax.tree.map(pack, self.values), jnp.arange(cap) < n, self.table, self.wrap, True
        )

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise UnsupportedError("slicing a traced list", "use a comprehension with a filter")
        lst = self.compacted()
        i = jnp.asarray(i)
        i = jnp.where(i < 0, i + lst.count(), i)
        return lst.element(jnp.clip(i, 0, lst.capacity - 1), (i >= 0) & (i < lst.count()))

    def with_mask(self, mask):
        return TracedList(self.values, mask, self.table, self.wrap, False)

    def numeric(self, what):
        if self.table is not None or self.wrap is not None:
            raise UnsupportedError(
                f"`{what}` over a list of agents or cells",
                f"apply `{what}` to their attributes, e.g. `{what}(a.wealth for a in agents)`",
            )
        return self.values

    def __repr__(self):
        return f"TracedList(capacity={self.capacity})"


class MultiList:
    """Agents of several classes inside a compiled step: one TracedList per class."""

    def __init__(self, lists):
        self.lists = list(lists)

    def _mj_traced_lists(self):
        return self.lists

    def any(self):
        out = self.lists[0].any()
        for lst in self.lists[1:]:
            out = out | lst.any()
        return out

    def count(self):
        return sum(lst.count() for lst in self.lists)

    def __repr__(self):
        return f"MultiList({len(self.lists)} classes)"


class TracedLocation:
    """A place in a space inside a compiled step: ``(grid, cell id, valid)``.

    Subclasses say how to turn another value into one of them (``_coerce``) and which
    grid function wraps a cell id back into one (``_wrapper``).
    """

    def __init__(self, grid, idx, valid=True):
        self._grid = grid
        self._mj_idx = jnp.asarray(idx, jnp.int32)
        self._mj_valid = jnp.asarray(valid)

    def _coerce(self, other):
        raise NotImplementedError

    def _wrapper(self):
        raise NotImplementedError

    def _mj_select(self, c, other):
        other = self._coerce(other)
        return type(self)(self._grid, jnp.where(c, self._mj_idx, other._mj_idx),
                          jnp.where(c, self._mj_valid, other._mj_valid))

    def _mj_same(self, other):
        other = self._coerce(other)
        return (self._mj_idx == other._mj_idx) & self._mj_valid & other._mj_valid

    def _mj_key(self):
        return self._mj_idx

    def _mj_flatten(self):
        return self._wrapper(), self._mj_idx

    def __eq__(self, other):
        if other is None:
            return jnp.logical_not(self._mj_valid)
        return self._mj_same(other)

    def __ne__(self, other):
        return jnp.logical_not(self.__eq__(other))

    __hash__ = None

    def __repr__(self):
        return type(self).__name__


def tree_where(c, a, b):
    """Select between two values of the same structure (numbers, arrays, traced lists)."""
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)
