"""Errors raised by mesa_jax, each naming the user's code and what to write instead."""

from __future__ import annotations

import os
import sys

__all__ = ["MesaJaxError", "UnsupportedError", "user_location"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


class MesaJaxError(Exception):
    """Base class of every error mesa_jax raises itself."""


class UnsupportedError(MesaJaxError):
    """A construct that cannot be compiled, with the user's file:line and a fix.

    The message has three parts: what was found (``construct``), where
    (``location``, the user's ``file:line``) and what to write instead (``fix``).
    """

    def __init__(self, construct: str, fix: str, location: str | None = None):
        self.construct = construct
        self.fix = fix
        self.location = location or user_location()
        super().__init__(
            f"{self.location}: {construct} is not supported in a compiled step.\n"
            f"  Write instead: {fix}"
        )


def _is_library_file(filename: str) -> bool:
    if filename.startswith("<mesa_jax"):
        return True
    path = os.path.abspath(filename)
    if path.startswith(_PKG_DIR + os.sep):
        return True
    for mod in ("jax", "jaxlib", "numpy", "polars", "contextlib", "functools"):
        if f"{os.sep}{mod}{os.sep}" in path:
            return True
    return False


def user_location(depth: int = 1) -> str:
    """The innermost ``file:line`` on the call stack that is the user's code."""
    frame = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_library_file(filename):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


# Mesa errors found inside a compiled step are reported by kind (see
# ``TraceContext.report_error``) and raised on the host after the step; the step's state
# is not committed. Each kind has a builder: int payload -> the exception Mesa raises.
_STEP_ERRORS: dict = {}


def register_step_error(kind: str, build) -> str:
    """Register how to build the exception for ``kind`` from its payload; returns ``kind``."""
    _STEP_ERRORS[kind] = build
    return kind


def step_error(kind: str, payload):
    """The exception for a reported step error."""
    build = _STEP_ERRORS.get(kind)
    if build is None:
        return MesaJaxError(f"{kind}: {list(payload)}")
    return build([int(v) for v in payload])
