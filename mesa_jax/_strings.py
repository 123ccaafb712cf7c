"""Strings in agent attributes: interned codes in the columns, text on the host.

An attribute whose values are all ``str`` (``self.state = "S"``) is an int32 column of
codes from one process-wide table (a string's code never changes, so compiled programs
can hold codes of the string constants they compare with). Inside a compiled step its
value is a :class:`TracedStr`: ``==`` / ``!=`` with text or another such value, ``in`` a
tuple of strings, assignment to a string attribute, and merging across traced branches
work; anything else (slicing, ``+``, formatting, a dict key) is an error naming it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .errors import UnsupportedError

__all__ = ["TracedStr", "intern", "text", "texts", "unsupported", "wrap"]

_CODES: dict[str, int] = {}
_TEXT: list[str] = []


def intern(s: str) -> int:
    """The code of ``s`` (new strings get the next code)."""
    code = _CODES.get(s)
    if code is None:
        code = _CODES[s] = len(_TEXT)
        _TEXT.append(s)
    return code


def text(code) -> str:
    return _TEXT[int(code)]


def texts(codes) -> np.ndarray:
    """Codes (any shape) back to an object array of strings."""
    return np.asarray(_TEXT + [""], dtype=object)[np.asarray(codes, np.int64)]


def wrap(code, _valid=True):
    """A list element's code as a TracedStr (the ``wrap`` of traced lists of text)."""
    return TracedStr(code)


def unsupported(what):
    return UnsupportedError(
        f"{what} on a string attribute's value inside a compiled step (it is kept as a code)",
        "compare it with `==`, `!=` or `in (\"a\", \"b\")`, or assign it; do string work on the "
        "host, or keep a number or an Enum instead")


@jax.tree_util.register_pytree_node_class
class TracedStr:
    """A string attribute's value in a compiled step: its (traced) code."""

    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code

    @staticmethod
    def code_of(value):
        """The code of text or of a TracedStr; None for anything else."""
        if isinstance(value, str):
            return jnp.int32(intern(value))
        if isinstance(value, TracedStr):
            return value.code
        return None

    def _mj_flatten(self):  # an element of a comprehension's result
        return wrap, self.code

    def tree_flatten(self):
        return (self.code,), None

    @classmethod
    def tree_unflatten(cls, _aux, children):
        return cls(children[0])

    def __eq__(self, other):
        code = TracedStr.code_of(other)
        if code is None:
            return False  # as Python: text never equals a number or None
        return self.code == code

    def __ne__(self, other):
        return jnp.logical_not(self.__eq__(other))

    def _mj_select(self, c, other):
        code = TracedStr.code_of(other)
        if code is None:
            raise UnsupportedError(
                f"a variable holding text on one path of a traced branch and "
                f"{type(other).__name__} on the other", "keep one kind of value per variable")
        return TracedStr(jnp.where(c, self.code, code))

    def __hash__(self):
        raise unsupported("use as a dict key or set member")

    def __bool__(self):
        raise unsupported("a truth test")

    def __len__(self):
        raise unsupported("`len()`")

    def __getitem__(self, _):
        raise unsupported("indexing or slicing")

    def __add__(self, _):
        raise unsupported("`+`")

    __radd__ = __add__

    def __format__(self, _spec):
        raise unsupported("formatting")

    def __str__(self):
        raise unsupported("`str()`")

    def __getattr__(self, name):
        if name.startswith("_"):  # protocol probes (hasattr) stay plain misses
            raise AttributeError(name)
        raise unsupported(f"`.{name}`")

    def __repr__(self):
        return f"TracedStr({self.code!r})"
