"""MaskedRows: a numpy array whose leading axis has a fixed capacity and a validity mask.

Per-agent numpy code in a step builds arrays whose length depends on the data:
``np.asarray([n.direction for n in neighbors])``, ``positions - point``,
``delta[distances < sep]``. Inside a compiled step such an array is ``data`` of shape
``[capacity, ...]`` plus ``mask [capacity]`` (which rows exist). Elementwise arithmetic
keeps the mask; boolean indexing narrows it; reductions (``sum``, ``mean``, ``max``,
``min``, ``len``) see only the valid rows, so the results equal numpy's on the
variable-length array.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._collections import prefix_count
from .errors import UnsupportedError

__all__ = ["MaskedRows", "as_masked", "norm_last", "reduce_rows"]

_SMALL = 8  # trailing axes up to this long are reduced component by component


def reduce_rows(op, z):
    """``op(z, axis=0)``; for ``[rows, d]`` with a short ``d`` (positions, headings), one
    reduction per component: vmapped over agents, XLA on the CPU reduces a ``[n, rows]``
    plane several times faster than the middle axis of ``[n, rows, d]``."""
    if z.ndim == 2 and z.shape[1] <= _SMALL:
        return jnp.stack([op(z[:, i], axis=0) for i in range(z.shape[1])])
    return op(z, axis=0)


def norm_last(x):
    """Euclidean norm over the last axis, written out for short vectors (see reduce_rows)."""
    if x.shape[-1] <= _SMALL:
        sq = x[..., 0] * x[..., 0]
        for i in range(1, x.shape[-1]):
            sq = sq + x[..., i] * x[..., i]
        return jnp.sqrt(sq)
    return jnp.linalg.norm(x, axis=-1)


def _split(x):
    if isinstance(x, MaskedRows):
        return x.data, x.mask
    return jnp.asarray(x), None


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a & b


class MaskedRows:
    """``data [capacity, ...]`` whose rows exist where ``mask [capacity]`` holds."""

    __array_priority__ = 1000  # numpy defers to our operators

    def __init__(self, data, mask):
        self.data = jnp.asarray(data)
        self.mask = jnp.asarray(mask, bool)

    # ------------------------------------------------------------- helpers
    def _m(self, ndim=None):
        nd = self.data.ndim if ndim is None else ndim
        return self.mask.reshape(self.mask.shape + (1,) * (nd - 1))

    def _zeroed(self, fill=0):
        return jnp.where(self._m(), self.data, jnp.asarray(fill, self.data.dtype))

    def _binary(self, other, op, reverse=False):
        od, om = _split(other)
        a, b = (od, self.data) if reverse else (self.data, od)
        return MaskedRows(op(a, b), _and(self.mask, om))

    # ---------------------------------------------------------- arithmetic
    def __add__(self, o): return self._binary(o, jnp.add)
    def __radd__(self, o): return self._binary(o, jnp.add, True)
    def __sub__(self, o): return self._binary(o, jnp.subtract)
    def __rsub__(self, o): return self._binary(o, jnp.subtract, True)
    def __mul__(self, o): return self._binary(o, jnp.multiply)
    def __rmul__(self, o): return self._binary(o, jnp.multiply, True)
    def __truediv__(self, o): return self._binary(o, jnp.true_divide)
    def __rtruediv__(self, o): return self._binary(o, jnp.true_divide, True)
    def __floordiv__(self, o): return self._binary(o, jnp.floor_divide)
    def __mod__(self, o): return self._binary(o, jnp.mod)
    def __pow__(self, o): return self._binary(o, jnp.power)
    def __lt__(self, o): return self._binary(o, jnp.less)
    def __le__(self, o): return self._binary(o, jnp.less_equal)
    def __gt__(self, o): return self._binary(o, jnp.greater)
    def __ge__(self, o): return self._binary(o, jnp.greater_equal)
    def __eq__(self, o): return self._binary(o, jnp.equal)  # noqa: E704
    def __ne__(self, o): return self._binary(o, jnp.not_equal)
    def __and__(self, o): return self._binary(o, jnp.logical_and)
    def __or__(self, o): return self._binary(o, jnp.logical_or)
    def __neg__(self): return MaskedRows(-self.data, self.mask)
    def __abs__(self): return MaskedRows(jnp.abs(self.data), self.mask)
    def __invert__(self): return MaskedRows(~self.data, self.mask)

    __hash__ = None

    # ------------------------------------------------------------ indexing
    def __getitem__(self, key):
        if isinstance(key, MaskedRows) or (hasattr(key, "dtype") and jnp.asarray(key).dtype == bool):
            kd, km = _split(key)
            if kd.shape != self.mask.shape:
                raise UnsupportedError("boolean indexing with a mask of another length",
                                       "index with a condition on the same rows")
            return MaskedRows(self.data, _and(self.mask, _and(kd, km)))
        if isinstance(key, tuple) and key and key[0] == slice(None):
            return MaskedRows(self.data[key], self.mask)
        if isinstance(key, (int, jnp.ndarray)) or hasattr(key, "dtype"):
            # the i-th existing row
            i = jnp.asarray(key)
            csum = prefix_count(self.mask)
            n = csum[-1]
            i = jnp.where(i < 0, i + n, i)
            slot = jnp.argmax(csum > i)
            return self.data[slot]
        raise UnsupportedError(f"indexing a per-agent array with {type(key).__name__}",
                               "index with a boolean condition, `[:, j]`, or an int")

    # ---------------------------------------------------------- reductions
    def count(self):
        return jnp.sum(self.mask.astype(jnp.int32))

    def _mj_len(self):
        return self.count()

    def _reduce(self, op, z, axis):
        return reduce_rows(op, z) if axis == 0 else op(z, axis=axis)

    def sum(self, axis=None):
        return self._reduce(jnp.sum, self._zeroed(), axis)

    def mean(self, axis=None):
        if axis == 0:
            return self.sum(axis=0) / self.count()
        if axis is None:
            per_row = 1
            for d in self.data.shape[1:]:
                per_row *= d
            return self.sum() / (self.count() * per_row)
        return MaskedRows(jnp.mean(self.data, axis=axis), self.mask)

    def max(self, axis=None):
        low = jnp.finfo(self.data.dtype).min if jnp.issubdtype(self.data.dtype, jnp.floating) else jnp.iinfo(self.data.dtype).min
        return self._reduce(jnp.max, self._zeroed(low), axis)

    def min(self, axis=None):
        high = jnp.finfo(self.data.dtype).max if jnp.issubdtype(self.data.dtype, jnp.floating) else jnp.iinfo(self.data.dtype).max
        return self._reduce(jnp.min, self._zeroed(high), axis)

    def any(self, axis=None):
        return self._reduce(jnp.any, self._zeroed(False), axis)

    def all(self, axis=None):
        return self._reduce(jnp.all, jnp.where(self._m(), self.data, True), axis)

    @property
    def shape(self):
        raise UnsupportedError("`.shape` of an array whose length depends on the data",
                               "use `len(a)` (traced) or the row's own shape `a[0].shape`")

    @property
    def T(self):  # noqa: N802
        raise UnsupportedError("transposing a per-agent array", "reduce over axis 0 first")

    def __len__(self):
        raise UnsupportedError("Python's `len()` on a per-agent array outside converted code",
                               "call len() inside a model or agent method")

    def __bool__(self):
        raise UnsupportedError("the truth value of a per-agent array",
                               "use `.any()` / `.all()` or `len(a) > 0`")

    def __iter__(self):
        raise UnsupportedError("iterating a per-agent array", "use a comprehension over the agents")

    def __repr__(self):
        return f"MaskedRows(capacity={self.mask.shape[0]})"

    # ------------------------------------------------------------ numpy
    def apply(self, fn, args, kwargs):
        """``numpy.fn(...)`` with this array among ``args``: elementwise on the rows."""
        name = getattr(fn, "__name__", "")
        if name in ("sum", "mean", "max", "min", "any", "all") and args and args[0] is self:
            return getattr(self, name)(*args[1:], **kwargs)
        if name in ("array", "asarray", "asanyarray"):
            return self
        if name == "norm":
            ord_ = kwargs.get("ord", args[1] if len(args) > 1 else None)
            axis = kwargs.get("axis", args[2] if len(args) > 2 else None)
            if axis in (1, -1) and self.data.ndim == 2 and ord_ is None:
                return MaskedRows(norm_last(self.data), self.mask)
            if axis in (1, -1):
                return MaskedRows(jnp.linalg.norm(self.data, ord=ord_, axis=axis), self.mask)
            return jnp.linalg.norm(self._zeroed(), ord=ord_, axis=axis)
        mask = None
        plain = []
        for a in args:
            d, m = _split(a)
            plain.append(d)
            mask = _and(mask, m)
        out = getattr(jnp, name)(*plain, **kwargs)
        return MaskedRows(out, mask)


def as_masked(values, mask):
    return MaskedRows(values, mask)
