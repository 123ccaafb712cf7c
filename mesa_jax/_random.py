"""``random`` and ``rng`` inside a compiled step: the stdlib / numpy methods on JAX keys.

Each call splits the acting frame's key (per agent: ``fold_in(call_key, row)``), so a
seed gives the same run every time. Streams are not bit-equal to Mesa's; distributions are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._collections import MultiList, TracedList
from .errors import UnsupportedError, register_step_error

__all__ = ["TracedRandom", "TracedGenerator"]


_GOLDEN = 0x9E3779B9


def mix32(x):
    """A 32-bit integer hash (the "lowbias32" finaliser): good avalanche, a few ops."""
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def substream(state, i):
    """An independent stream state for item ``i`` (an agent row, a list slot)."""
    return mix32(jnp.asarray(state, jnp.uint32) ^ mix32(jnp.asarray(i, jnp.uint32) + jnp.uint32(_GOLDEN)))


def draw_bits(state, n, shape=()):
    """The ``n``-th draw of a stream: uint32 bits of ``shape`` (counter-based, no key splits)."""
    ctr = jnp.uint32((n * _GOLDEN) & 0xFFFFFFFF)
    if shape:
        ctr = ctr + jnp.arange(int(np.prod(shape)), dtype=jnp.uint32).reshape(shape) * jnp.uint32(0x85EBCA6B)
    return mix32(mix32(jnp.asarray(state, jnp.uint32) ^ ctr) + ctr)


def _frame():
    from ._context import current

    return current().frame


def _key():
    return _frame().next_key()


def _uniform(shape=()):
    bits = _frame().next_bits(shape)
    return (bits >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def _randint(lo, hi, shape=()):
    """Integers in [lo, hi) (hi exclusive), uniform: ``floor(bits * span / 2**32)``.

    The 64-bit product is formed from 16-bit halves so every partial product fits in
    uint32 (JAX runs without x64); exact for any span below 2**31.
    """
    lo = jnp.asarray(lo, jnp.int32)
    span = jnp.maximum(jnp.asarray(hi, jnp.int32) - lo, 1).astype(jnp.uint32)
    bits = _frame().next_bits(shape)
    m16 = jnp.uint32(0xFFFF)
    bh, bl = bits >> 16, bits & m16
    sh, sl = span >> 16, span & m16
    hl, lh = bh * sl, bl * sh
    mid = ((bl * sl) >> 16) + (hl & m16) + (lh & m16)
    v = bh * sh + (hl >> 16) + (lh >> 16) + (mid >> 16)
    return lo + v.astype(jnp.int32)


def _as_list(seq, what):
    """A TracedList view of a traced list or a Python sequence of numbers / cells / agents."""
    if isinstance(seq, TracedList):
        return seq
    if isinstance(seq, MultiList):
        raise UnsupportedError(
            f"`{what}` over agents of several classes",
            "choose within one class: filter with `isinstance(a, Sheep)` in the comprehension")
    from .discrete_space._cells import cells_to_list
    from .agent import Agent

    seq = list(seq)
    if not seq:
        raise IndexError("Cannot choose from an empty sequence")
    lst = cells_to_list(seq)
    if lst is not None:
        return lst
    if all(isinstance(a, Agent) for a in seq):
        tables = {a._table for a in seq}
        if len(tables) == 1:
            table = tables.pop()
            rows = jnp.stack([jnp.asarray(a._row) for a in seq])
            return TracedList(rows, jnp.ones(len(seq), bool), table=table, compact=True)
    try:
        values = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *seq)
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedError(
            f"`{what}` over a Python sequence of {type(seq[0]).__name__} objects",
            "choose an index instead: `seq[self.random.randrange(len(seq))]` with a "
            "sequence of numbers, or keep the objects' ids in the sequence",
        ) from exc
    return TracedList(values, jnp.ones(len(seq), bool), compact=True)


_EMPTY = register_step_error("empty_choice", lambda p: IndexError("Cannot choose from an empty sequence"))


def pick(lst):
    """One uniformly random valid element of a TracedList.

    Choosing from an empty list is Python's IndexError, raised after the step (where the
    call ran: a choice in an untaken branch raises nothing).
    """
    from ._context import current

    n = lst.count()
    current().report_error(_EMPTY, n == 0)
    k = _randint(0, jnp.maximum(n, 1))
    return lst.element(lst.nth_valid(k), n > 0)


class TracedRandom:
    """The methods of ``random.Random`` that Mesa models use, on JAX keys."""

    def random(self):
        return _uniform()

    def uniform(self, a, b):
        return a + (b - a) * _uniform()

    def randint(self, a, b):
        return _randint(a, jnp.asarray(b) + 1)

    def randrange(self, start, stop=None, step=1):
        if stop is None:
            start, stop = 0, start
        n = (jnp.asarray(stop) - start + step - 1) // step
        return start + step * _randint(0, n)

    def gauss(self, mu=0.0, sigma=1.0):
        return mu + sigma * jax.random.normal(_key(), ())

    normalvariate = gauss

    def expovariate(self, lambd=1.0):
        return jax.random.exponential(_key(), ()) / lambd

    def choice(self, seq):
        return pick(_as_list(seq, "random.choice"))

    def choices(self, population, weights=None, *, cum_weights=None, k=1):
        lst = _as_list(population, "random.choices")
        key = _key()
        if cum_weights is not None:
            cw = jnp.asarray(cum_weights, jnp.float32)
            weights = jnp.diff(cw, prepend=0.0)
        if weights is None:
            p = lst.mask.astype(jnp.float32)
        else:
            p = jnp.where(lst.mask, jnp.asarray(weights, jnp.float32), 0.0)
        slots = jax.random.choice(key, lst.capacity, (int(k),), p=p / jnp.sum(p))
        vals = jax.tree.map(lambda a: a[slots], lst.values)
        return TracedList(vals, jnp.ones(int(k), bool), lst.table, lst.wrap, compact=True)

    def sample(self, population, k):
        lst = _as_list(population, "random.sample")
        k = int(k)
        key = _key()
        score = jnp.where(lst.mask, jax.random.uniform(key, (lst.capacity,)), 2.0)
        order = jnp.argsort(score)[:k]
        vals = jax.tree.map(lambda a: a[order], lst.values)
        return TracedList(vals, jnp.arange(k) < lst.count(), lst.table, lst.wrap, compact=True)

    def shuffle(self, x):
        if not isinstance(x, TracedList):
            raise UnsupportedError(
                "`random.shuffle` of a Python list inside a compiled step",
                "shuffle a traced list (a comprehension's result), or use `random.sample`",
            )
        lst = x.compacted()
        key = _key()
        score = jnp.where(lst.mask, jax.random.uniform(key, (lst.capacity,)), 2.0)
        order = jnp.argsort(score)
        x.values = jax.tree.map(lambda a: a[order], lst.values)
        x.mask = lst.mask
        x.compact = True


class TracedGenerator:
    """The methods of ``numpy.random.Generator`` that Mesa models use, on JAX keys."""

    @staticmethod
    def _shape(size):
        if size is None:
            return ()
        return (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)

    def random(self, size=None):
        return _uniform(self._shape(size))

    def uniform(self, low=0.0, high=1.0, size=None):
        return low + (high - low) * _uniform(self._shape(size))

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * jax.random.normal(_key(), self._shape(size))

    def integers(self, low, high=None, size=None, endpoint=False):
        if high is None:
            low, high = 0, low
        if endpoint:
            high = jnp.asarray(high) + 1
        return _randint(low, high, self._shape(size))

    def choice(self, a, size=None, replace=True, p=None):
        if isinstance(a, int):
            a = jnp.arange(a)
        lst = _as_list(a, "rng.choice")
        if size is None and p is None:
            return pick(lst)
        shape = self._shape(size) if size is not None else ()
        w = lst.mask.astype(jnp.float32) if p is None else jnp.where(lst.mask, jnp.asarray(p), 0.0)
        slots = jax.random.choice(_key(), lst.capacity, shape, replace=replace, p=w / jnp.sum(w))
        if lst.table is not None or lst.wrap is not None:
            if shape == ():
                return lst.element(slots)
            vals = jax.tree.map(lambda v: v[slots], lst.values)
            return TracedList(vals, jnp.ones(shape, bool), lst.table, lst.wrap, compact=True)
        return jax.tree.map(lambda v: v[slots], lst.values)
