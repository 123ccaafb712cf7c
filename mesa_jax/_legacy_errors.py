"""Mesa's exceptions from the legacy spaces, reported inside compiled steps.

Each error below is registered with :func:`errors.register_step_error`; a traced space
method calls :func:`report` with the condition under which Mesa would raise, and the host
raises the exception after the step (the state from before the step is kept). The
exception's type and message are Mesa's own; what mesa_jax knows about the offender (the
agent's ``unique_id``, the position) is attached as a note (``BaseException.add_note``),
so ``str(exc)`` is exactly Mesa's message.

A payload is at most two int32: an agent id and a packed position (two int16, see
:func:`pack_xy`), or a node index, or two float16 bit patterns (``pack_f16``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._context import current
from .errors import register_step_error

__all__ = ["report", "pack_xy", "unpack_xy", "pack_f16", "unpack_f16"]

OUT_OF_BOUNDS = "Point out of bounds, and space non-toroidal."
POS_OUT_OF_BOUNDS = "The `pos` tuple passed is out of bounds."


def pack_xy(x, y):
    """Two ints in one int32 (each clipped to int16)."""
    x = jnp.clip(jnp.asarray(x, jnp.int32), -32768, 32767)
    y = jnp.clip(jnp.asarray(y, jnp.int32), -32768, 32767)
    return (x << 16) | (y & 0xFFFF)


def unpack_xy(p):
    p = int(p)
    return p >> 16, ((p & 0xFFFF) ^ 0x8000) - 0x8000


def pack_f16(x, y):
    """Two floats, rounded to float16, in one int32."""
    bits = jnp.asarray([x, y], jnp.float32).astype(jnp.float16).view(jnp.uint16).astype(jnp.int32)
    return (bits[0] << 16) | bits[1]


def unpack_f16(p):
    p = int(p) & 0xFFFFFFFF
    return tuple(float(np.array([v], np.uint16).view(np.float16)[0]) for v in (p >> 16, p & 0xFFFF))


def _noted(exc, note):
    if note:
        exc.add_note(f"mesa_jax (raised after a compiled step; the model keeps its state "
                     f"from before the step): {note}")
    return exc


def _kind(name, build, note=None):
    return register_step_error(f"legacy_space:{name}",
                               lambda p: _noted(build(p), note(p) if note else None))


def _agent_at(p):
    return f"agent {p[0]}, position {unpack_xy(p[1])}"


def _at(p):
    return f"position {unpack_xy(p[0])}"


KINDS = {
    # grids: torus_adj (move_agent, grid[x, y], move_agent_to_one_of)
    "oob_agent": _kind("oob_agent", lambda p: Exception(OUT_OF_BOUNDS), _agent_at),
    "oob": _kind("oob", lambda p: Exception(OUT_OF_BOUNDS), _at),
    # grids: get_neighborhood / get_neighbors with a position off the grid
    "pos_oob": _kind("pos_oob", lambda p: Exception(POS_OUT_OF_BOUNDS), _at),
    # grids: Mesa's ``_grid[x][y]`` (place_agent, is_cell_empty, get_cell_list_contents)
    "index_agent": _kind("index_agent", lambda p: IndexError("list index out of range"), _agent_at),
    "index": _kind("index", lambda p: IndexError("list index out of range"), _at),
    "float_index_agent": _kind(
        "float_index_agent", lambda p: TypeError("list indices must be integers or slices, not float"),
        lambda p: f"agent {p[0]}"),
    "float_index": _kind("float_index",
                         lambda p: TypeError("list indices must be integers or slices, not float")),
    "no_empty": _kind("no_empty", lambda p: Exception("ERROR: No empty cells"),
                      lambda p: f"agent {p[0]}"),
    "remove_unplaced": _kind("remove_unplaced",
                             lambda p: TypeError("cannot unpack non-iterable NoneType object"),
                             lambda p: f"agent {p[0]} is not on the grid"),
    "swap_a": _kind("swap_a", lambda p: Exception(f"<Agent id: {p[0]}> - not on the grid")),
    "swap_b": _kind("swap_b", lambda p: Exception(f"<Agent id: {p[1]}> - not on the grid")),
    "swap_ab": _kind("swap_ab", lambda p: Exception(
        f"<Agent id: {p[0]}>, <Agent id: {p[1]}> - not on the grid")),
    "no_positions": _kind("no_positions", lambda p: ValueError(
        f"No positions given, could not move agent {p[0]}.")),
    # networks
    "node_missing": _kind("node_missing", lambda p: KeyError(p[0])),
    "node_remove_unplaced": _kind("node_remove_unplaced", lambda p: KeyError(None),
                                  lambda p: f"agent {p[0]} is not on the network"),
    "node_not_in_graph": _kind("node_not_in_graph",
                               lambda p: _nx_error("NetworkXError", f"The node {p[0]} is not in the graph.")),
    "source_not_in_graph": _kind("source_not_in_graph",
                                 lambda p: _nx_error("NodeNotFound", f"Source {p[0]} is not in G")),
    # continuous space
    "cont_oob_agent": _kind("cont_oob_agent", lambda p: Exception(OUT_OF_BOUNDS),
                            lambda p: f"agent {p[0]}, position about {unpack_f16(p[1])}"),
    "cont_oob": _kind("cont_oob", lambda p: Exception(OUT_OF_BOUNDS),
                      lambda p: f"position about {unpack_f16(p[0])}"),
    "cont_remove_unplaced": _kind("cont_remove_unplaced",
                                  lambda p: Exception("Agent does not exist in the space"),
                                  lambda p: f"agent {p[0]}"),
}


def _nx_error(name, message):
    import networkx as nx

    return getattr(nx, name)(message)


def report(name, cond, payload=()):
    """Report the legacy-space error ``name`` where ``cond`` holds (see ``KINDS``)."""
    current().report_error(KINDS[name], cond, payload)
