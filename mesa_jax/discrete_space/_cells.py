"""Cells, cell collections and cell-aware agents for ``mesa_jax.discrete_space``.

Eagerly a :class:`Cell` is a cached handle ``(grid, cell id)``; ``cell.agents`` reads the
grid's occupancy, built from the agents' ``_mj_cell`` column. Inside a compiled step a cell
is a :class:`TracedCell` ``(grid, id, valid)``; its ``agents`` come from the traced cell
index and its ``neighborhood`` from the grid's neighbour table.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._collections import MultiList, TracedList, TracedLocation, prefix_count
from .._context import current
from .._random import TracedRandom, pick
from ..agent import Agent
from ..errors import UnsupportedError, register_step_error
from ._layers import write_layer

__all__ = ["Cell", "CellCollection", "CellAgent", "FixedAgent", "Grid2DMovingAgent", "TracedCell",
           "cells_to_list"]

_COLUMN = "_mj_cell"

_RADIUS = register_step_error("radius_below_one", lambda p: ValueError("radius must be larger than one"))
_NO_CELL = register_step_error(
    "move_without_cell", lambda p: AttributeError("'NoneType' object has no attribute 'connections'"))


def _no_cell_in(direction):
    return register_step_error(f"no_cell_in_direction:{direction}",
                               lambda p: ValueError(f"No cell in direction {direction}"))


def _aug(obj, name, op, value):
    """``obj.name <op>= value`` for cells (``+=``/``-=`` add up over writers in a step)."""
    if current() is not None and op in ("Add", "Sub"):
        layer = obj._grid._layer(name)
        if layer is not None:
            delta = value if op == "Add" else -jnp.asarray(value)
            write_layer(obj, as_traced_cell(obj), layer, None, add=(True, delta))
            return
    from .._ops import _AUG

    setattr(obj, name, _AUG[op](getattr(obj, name), value))


class Cell:
    """One cell of a discrete space (Mesa's ``Cell``)."""

    def __init__(self, grid, idx):
        self._grid = grid
        self._idx = int(idx)

    # property layers: ``cell.<layer name>`` reads and writes the layer's value here
    def __getattr__(self, name):
        grid = self.__dict__.get("_grid")
        layer = None if grid is None or name[:1] == "_" else grid._layer(name)
        if layer is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        if current() is not None:
            return layer._mj_read(as_traced_cell(self))
        return layer._mj_get(self)

    def __setattr__(self, name, value):
        grid = self.__dict__.get("_grid")
        layer = None if grid is None or name[:1] == "_" else grid._layer(name)
        if layer is None:
            object.__setattr__(self, name, value)
        elif current() is not None:
            write_layer(self, as_traced_cell(self), layer, value)
        else:
            layer._mj_put(self, value)

    _mj_augattr = _aug

    @property
    def coordinate(self):
        return self._grid.geom.coord_of(self._idx)

    @property
    def capacity(self):
        return self._grid.capacity

    @property
    def random(self):
        return self._grid.random

    @property
    def agents(self) -> list:
        if current() is not None:  # occupancy changes from step to step: read it traced
            return as_traced_cell(self).agents
        model = self._grid._model
        if model is None:
            return []
        occ = self._grid.geom.host_occupancy(model)
        return [t.handle(r) for t, r in occ.get(self._idx, [])]

    @property
    def is_empty(self) -> bool:
        if current() is not None:
            return as_traced_cell(self).is_empty
        return len(self.agents) == 0

    @property
    def is_full(self) -> bool:
        if current() is not None:
            return as_traced_cell(self).is_full
        cap = self._grid.capacity
        return cap is not None and len(self.agents) >= cap

    @property
    def connections(self) -> dict:
        return self._grid._connections(self._idx)

    @property
    def neighborhood(self) -> CellCollection:
        return self.get_neighborhood()

    def get_neighborhood(self, radius: int = 1, include_center: bool = False) -> CellCollection:
        g = self._grid
        if current() is not None and isinstance(radius, jax.core.Tracer):
            return as_traced_cell(self).get_neighborhood(radius, include_center)
        if radius < 1:
            raise ValueError("radius must be larger than one")
        ids = g.geom.neighbour_table(radius, g._moore, include_center)[self._idx]
        return CellCollection([g._cell(i) for i in ids if i >= 0], random=g.random)

    def add_agent(self, agent) -> None:
        agent.cell = self

    def remove_agent(self, agent) -> None:
        if agent.cell is self:
            agent.cell = None

    def __repr__(self):
        return f"Cell({self.coordinate}, {self.agents})"


class CellCollection:
    """An ordered collection of cells (Mesa's ``CellCollection``)."""

    def __init__(self, cells, random=None):
        self._cells = list(cells)
        self.random = random

    @property
    def cells(self) -> list:
        return self._cells

    @property
    def agents(self) -> list:
        if current() is not None:
            return TracedCellCollection.from_cells(self._cells).agents
        return [a for c in self._cells for a in c.agents]

    def __iter__(self):
        return iter(self._cells)

    def __len__(self):
        return len(self._cells)

    def __getitem__(self, key):
        return key.agents

    def __repr__(self):
        return f"CellCollection({len(self._cells)} cells)"

    def _mj_traced_lists(self):
        lst = cells_to_list(self._cells)
        return None if lst is None else [lst]

    def _rand(self):
        return TracedRandom() if current() is not None else self.random

    def select_random_cell(self):
        if current() is not None:
            return TracedRandom().choice(self._cells)
        return self.random.choice(self._cells)

    def select_random_agent(self):
        if current() is not None:
            return TracedCellCollection.from_cells(self._cells).select_random_agent()
        return self.random.choice(self.agents)

    def select(self, filter_func=None, at_most=float("inf")):
        if current() is not None:
            return TracedCellCollection.from_cells(self._cells).select(filter_func, at_most)
        if filter_func is None and at_most == float("inf"):
            return self
        limit = at_most if isinstance(at_most, int) or at_most == float("inf") else int(len(self) * at_most)
        out = []
        for c in self._cells:
            if len(out) >= limit:
                break
            if filter_func is None or filter_func(c):
                out.append(c)
        return CellCollection(out, random=self.random)


# ------------------------------------------------------------------ traced
class TracedCell(TracedLocation):
    """A cell inside a compiled step: ``(grid, id, valid)``."""

    @property
    def coordinate(self):
        h = self._grid.geom.height
        return (self._mj_idx // h, self._mj_idx % h)

    @property
    def capacity(self):
        return self._grid.capacity

    def _agent_lists(self):
        ctx = current()
        out = []
        for t in self._grid.geom.tables(self._grid._model):
            slots, _ = self._grid.geom.traced_index(ctx, t)
            rows = slots[jnp.clip(self._mj_idx, 0, None)]
            out.append(TracedList(rows, (rows >= 0) & self._mj_valid, table=t,
                                  compact=True))  # the index fills slots from the first
        return out

    @property
    def agents(self):
        lists = self._agent_lists()
        if len(lists) == 1:
            return lists[0]
        return MultiList(lists)

    def _count(self):
        return sum(lst.count() for lst in self._agent_lists())

    @property
    def is_empty(self):
        return self._count() == 0

    @property
    def is_full(self):
        cap = self._grid.capacity
        if cap is None:
            return jnp.asarray(False)
        return self._count() >= cap

    @property
    def neighborhood(self):
        return self.get_neighborhood()

    def get_neighborhood(self, radius: int = 1, include_center: bool = False):
        g = self._grid
        ctx = current()
        if isinstance(radius, jax.core.Tracer):
            ctx.report_error(_RADIUS, jnp.logical_and(radius < 1, self._mj_valid))
        elif radius < 1:  # Mesa's ValueError, where (and if) this call runs
            ctx.report_error(_RADIUS, self._mj_valid)
            radius = 1
        ids, ok = g.geom.traced_neighbours(ctx, self._mj_idx, self._mj_valid, radius,
                                           g._moore, include_center)
        # a table with no gaps (a torus) gives lists whose valid slots come first: a random
        # pick needs no running count
        full = not isinstance(radius, jax.core.Tracer) and not g.geom.tables_as_data and \
            bool((g.geom.neighbour_table(int(radius), g._moore, include_center) >= 0).all())
        return TracedCellCollection(g, ids, ok, compact=full)

    # property layers (see ``_layers.py``)
    def __getattr__(self, name):
        grid = self.__dict__.get("_grid")
        layer = None if grid is None or name[:1] == "_" else grid._layer(name)
        if layer is None:
            cls = "GridCell" if hasattr(grid, "_mesa_property_layers") else "Cell"
            raise AttributeError(f"'{cls}' object has no attribute '{name}'")
        return layer._mj_read(self)

    def __setattr__(self, name, value):
        if name[:1] == "_":
            object.__setattr__(self, name, value)
            return
        layer = self._grid._layer(name)
        if layer is None:
            raise UnsupportedError(
                f"setting `cell.{name}` inside a compiled step (cells keep no attributes there)",
                f"keep per-cell values in a property layer "
                f"(`grid.create_property_layer(\"{name}\")`, then `cell.{name} = ...`)")
        write_layer(self, self, layer, value)

    _mj_augattr = _aug

    def _coerce(self, other):
        return as_traced_cell(other, self._grid)

    def _wrapper(self):
        return self._grid._wrap_cell


def as_traced_cell(cell, grid=None):
    if isinstance(cell, TracedCell):
        return cell
    if isinstance(cell, Cell):
        return TracedCell(cell._grid, cell._idx, True)
    if cell is None and grid is not None:
        return TracedCell(grid, -1, False)
    raise TypeError(f"not a cell: {cell!r}")


class TracedCellCollection:
    """A collection of cells inside a compiled step (a padded list of cell ids)."""

    def __init__(self, grid, ids, mask, compact=False):
        self._grid = grid
        self._list = TracedList(ids, mask, wrap=grid._wrap_cell, compact=compact)

    @classmethod
    def from_cells(cls, cells):
        lst = cells_to_list(cells)
        if lst is None:
            raise UnsupportedError("a cell collection mixing cells of several grids",
                                   "keep one grid per collection")
        grid = cells[0]._grid
        return cls(grid, lst.values, lst.mask)

    def _mj_traced_lists(self):
        return [self._list]

    @property
    def cells(self):
        return self._list

    def select_random_cell(self):
        return pick(self._list)

    def _agent_lists(self):
        ctx = current()
        ids = jnp.clip(self._list.values, 0, None)
        out = []
        for t in self._grid.geom.tables(self._grid._model):
            slots, _ = self._grid.geom.traced_index(ctx, t)
            rows = slots[ids]  # [M, K]
            ok = (rows >= 0) & self._list.mask[:, None]
            out.append(TracedList(rows.reshape(-1), ok.reshape(-1), table=t))
        return out

    @property
    def agents(self):
        lists = self._agent_lists()
        return lists[0] if len(lists) == 1 else MultiList(lists)

    def select_random_agent(self):
        lists = self._agent_lists()
        if len(lists) != 1:
            raise UnsupportedError("`select_random_agent` over cells holding agents of several classes",
                                   "filter the agents by class and pick with `self.random.choice`")
        return pick(lists[0])

    def select(self, filter_func=None, at_most=float("inf")):
        from .. import _ops

        mask = self._list.mask
        if filter_func is not None:
            res = _ops._vectorised([self._list], lambda c: c, lambda c: _ops.call(filter_func, c),
                                   False, "select")
            mask = res.mask
        if at_most != float("inf"):
            if not isinstance(at_most, int):
                raise UnsupportedError("`select(at_most=<fraction>)` in a compiled step", "pass an int")
            mask = mask & (prefix_count(mask) <= at_most)
        return TracedCellCollection(self._grid, self._list.values, mask)

    def __repr__(self):
        return "TracedCellCollection"


def cells_to_list(seq):
    """A TracedList of cell ids for a Python sequence of cells of one grid, else None."""
    if not seq:
        return None
    first = seq[0]
    if not isinstance(first, (Cell, TracedCell)):
        return None
    grid = first._grid
    if not all(isinstance(c, (Cell, TracedCell)) and c._grid is grid for c in seq):
        return None
    if all(isinstance(c, Cell) for c in seq):
        ids = jnp.asarray(np.fromiter((c._idx for c in seq), np.int32, len(seq)))
        return TracedList(ids, jnp.ones(len(seq), bool), wrap=grid._wrap_cell, compact=True)
    cells = [as_traced_cell(c) for c in seq]
    ids = jnp.stack([c._mj_idx for c in cells])
    ok = jnp.stack([c._mj_valid for c in cells])
    return TracedList(ids, ok, wrap=grid._wrap_cell)


# ------------------------------------------------------------------ agents
class CellAgent(Agent):
    """An agent that lives in a cell of a discrete space and can move (Mesa's ``CellAgent``)."""

    @property
    def cell(self):
        t = self._table
        grid = t.grids.get(_COLUMN)
        if grid is None or _COLUMN not in t.cols:
            return None
        ctx = current()
        if ctx is not None:
            idx = ctx.read_attr(self, _COLUMN)
            return TracedCell(grid, idx, idx >= 0)
        idx = int(np.asarray(t.cols[_COLUMN])[self._row])
        return None if idx < 0 else grid._cell(idx)

    @cell.setter
    def cell(self, cell):
        t = self._table
        ctx = current()
        if ctx is not None:
            if _COLUMN not in t.cols:
                raise UnsupportedError(
                    f"placing a `{t.cls.__name__}` in a cell for the first time inside a step",
                    "give every agent its cell in `Model.__init__`")
            if cell is None:
                idx = jnp.int32(-1)
            else:
                tc = as_traced_cell(cell)
                idx = jnp.where(tc._mj_valid, tc._mj_idx, ctx.read_attr(self, _COLUMN))
            ctx.write_attr(self, _COLUMN, idx)
            return
        old = int(np.asarray(t.cols[_COLUMN])[self._row]) if _COLUMN in t.cols else -1
        if cell is None:
            new = -1
        else:
            if not isinstance(cell, Cell):
                raise TypeError(f"expected a Cell, got {type(cell).__name__}")
            grid = cell._grid
            bound = t.grids.get(_COLUMN)
            if bound is None:
                t.grids[_COLUMN] = grid
                t.spaces[_COLUMN] = grid.geom
                grid._bind(t.model)
            elif bound is not grid:
                raise UnsupportedError(f"`{t.cls.__name__}` agents in two different grids",
                                       "use one grid per agent class")
            if grid.capacity is not None and old != cell._idx and len(cell.agents) >= grid.capacity:
                raise Exception("ERROR: Cell is full")
            new = cell._idx
        t.set(self._row, _COLUMN, np.int32(new))
        g = t.grids.get(_COLUMN)
        if g is not None:
            g.geom.host_move(t.model, t, self._row, old, new)

    def move_to(self, cell) -> None:
        """Move to ``cell``."""
        self.cell = cell

    def move_relative(self, direction) -> None:
        """Move to the cell connected in ``direction`` (an offset such as ``(-1, 0)``);
        Mesa's ValueError if there is none (inside a step: raised after it)."""
        self._mj_walk(tuple(direction), 1)

    def _mj_walk(self, direction, distance):
        ctx = current()
        if ctx is None:
            for _ in range(distance):
                new = self.cell.connections.get(direction)
                if new is None:
                    raise ValueError(f"No cell in direction {direction}")
                self.cell = new
            return
        grid = self._table.grids.get(_COLUMN)
        if grid is None or not hasattr(grid, "step_table"):
            raise UnsupportedError("`move_relative` / `move` off a grid in a compiled step",
                                   "move with `self.cell = ...` (e.g. a cell of the neighbourhood)")
        tab = jnp.asarray(grid.step_table(direction))
        start = ctx.read_attr(self, _COLUMN)

        def one(_, carry):
            c, bad = carry
            nxt = tab[jnp.clip(c, 0, None)]
            bad = bad | (nxt < 0)
            return jnp.where(bad, c, nxt), bad

        carry = (start, start < 0)
        if isinstance(distance, (int, np.integer)):
            for i in range(int(distance)):
                carry = one(i, carry)
            moved = int(distance) > 0
        else:
            carry = jax.lax.fori_loop(0, jnp.maximum(distance, 0), one, carry)
            moved = distance > 0
        end, bad = carry
        ctx.report_error(_NO_CELL, jnp.logical_and(start < 0, moved))
        ctx.report_error(_no_cell_in(direction), jnp.logical_and(bad & (start >= 0), moved))
        self.cell = TracedCell(grid, end, ~bad)

    def remove(self) -> None:
        super().remove()


class FixedAgent(Agent):
    """An agent fixed to one cell (Mesa's ``FixedAgent``): its cell is set once."""

    cell = CellAgent.cell

    @cell.setter
    def cell(self, cell):
        if current() is None and self._table.has(_COLUMN) and \
                int(np.asarray(self._table.cols[_COLUMN])[self._row]) >= 0 and cell is not None:
            raise ValueError("Cannot move agent in FixedCell")
        CellAgent.cell.fset(self, cell)


class Grid2DMovingAgent(CellAgent):
    """A cell agent that moves by compass directions on a 2D grid (Mesa's)."""

    DIRECTION_MAP = {
        "n": (-1, 0), "north": (-1, 0), "up": (-1, 0),
        "s": (1, 0), "south": (1, 0), "down": (1, 0),
        "e": (0, 1), "east": (0, 1), "right": (0, 1),
        "w": (0, -1), "west": (0, -1), "left": (0, -1),
        "ne": (-1, 1), "northeast": (-1, 1), "upright": (-1, 1),
        "nw": (-1, -1), "northwest": (-1, -1), "upleft": (-1, -1),
        "se": (1, 1), "southeast": (1, 1), "downright": (1, 1),
        "sw": (1, -1), "southwest": (1, -1), "downleft": (1, -1),
    }

    def move(self, direction: str, distance: int = 1):
        """Move ``distance`` cells towards ``direction`` ("north", "ne", "left", ...)."""
        if not isinstance(direction, str):
            raise UnsupportedError("a direction that is not a Python string",
                                   "pass the direction's name (e.g. \"north\")")
        direction = direction.lower()
        if direction not in self.DIRECTION_MAP:
            raise ValueError(f"Invalid direction: {direction}")
        self._mj_walk(self.DIRECTION_MAP[direction], distance)
