"""Legacy grids of ``mesa.space`` (``MultiGrid``, ``SingleGrid``), compiled.

Agent positions live in the ``_mj_pos`` column as cell ids (``x * height + y``). Eagerly
``agent.pos`` is an ``(x, y)`` tuple; inside a compiled step it is a :class:`TracedPos`
that indexes and unpacks like one.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from ._collections import MultiList, TracedList, TracedLocation
from ._context import current
from ._gridindex import GridGeometry
from .errors import UnsupportedError

__all__ = ["MultiGrid", "SingleGrid", "TracedPos"]

_COLUMN = "_mj_pos"


class TracedPos(TracedLocation):
    """A grid position inside a compiled step; behaves like the tuple ``(x, y)``."""

    def _xy(self):
        h = self._grid.height
        return (self._mj_idx // h, self._mj_idx % h)

    def __getitem__(self, i):
        return self._xy()[i]

    def __iter__(self):
        return iter(self._xy())

    def __len__(self):
        return 2

    def _coerce(self, other):
        return self._grid._as_traced_pos(other)

    def _wrapper(self):
        return self._grid._wrap_pos


class _Grid:
    """Shared implementation of the rectangular legacy grids."""

    _single = False

    def __init__(self, width: int, height: int, torus: bool) -> None:
        """Create a width x height grid (``torus``: edges wrap)."""
        self.width, self.height, self.torus = int(width), int(height), bool(torus)
        self.geom = GridGeometry(self.width, self.height, self.torus, _COLUMN,
                                 capacity=1 if self._single else None, full_message="Cell not empty")
        self._model = None

    # -------------------------------------------------------------- helpers
    def _wrap_pos(self, idx, ok):
        return TracedPos(self, idx, (idx >= 0) & ok)

    def _as_traced_pos(self, pos):
        if isinstance(pos, TracedPos):
            return pos
        if pos is None:
            return TracedPos(self, -1, False)
        x, y = pos
        return TracedPos(self, jnp.asarray(x) * self.height + jnp.asarray(y), True)

    def torus_adj(self, pos):
        """Wrap a position onto a torus (raises off a non-torus grid)."""
        if isinstance(pos, TracedPos):
            return pos
        if not self.out_of_bounds(pos):
            return pos
        if not self.torus:
            raise Exception("Point out of bounds, and space non-toroidal.")
        return pos[0] % self.width, pos[1] % self.height

    def out_of_bounds(self, pos) -> bool:
        x, y = pos
        return x < 0 or x >= self.width or y < 0 or y >= self.height

    def _bind(self, table):
        bound = table.grids.get(_COLUMN)
        if bound is None:
            table.grids[_COLUMN] = self
            table.spaces[_COLUMN] = self.geom
            if _COLUMN not in table.cols:
                table.set(0, _COLUMN, np.int32(-1))
                table.cols[_COLUMN][:] = -1
        elif bound is not self:
            raise UnsupportedError(f"`{table.cls.__name__}` agents in two different grids",
                                   "use one grid per agent class")
        if self._model is None:
            self._model = table.model

    def _pos_of(self, agent):
        ctx = current()
        if ctx is not None:
            idx = ctx.read_attr(agent, _COLUMN)
            return TracedPos(self, idx, idx >= 0)
        idx = int(np.asarray(agent._table.cols[_COLUMN])[agent._row])
        return None if idx < 0 else self.geom.coord_of(idx)

    def _set_pos(self, agent, pos):
        t = agent._table
        self._bind(t)
        ctx = current()
        if ctx is not None:
            p = self._as_traced_pos(pos)
            ctx.write_attr(agent, _COLUMN, jnp.where(p._mj_valid, p._mj_idx, -1))
            return
        old = int(np.asarray(t.cols[_COLUMN])[agent._row])
        new = -1 if pos is None else self.geom.index_of(pos)
        t.set(agent._row, _COLUMN, np.int32(new))
        self.geom.host_move(t.model, t, agent._row, old, new)

    # -------------------------------------------------------------- placing
    def place_agent(self, agent, pos) -> None:
        """Place ``agent`` at ``pos`` (an ``(x, y)`` tuple)."""
        pos = self.torus_adj(pos)
        if self._single and current() is None and not self.is_cell_empty(pos):
            raise Exception("Cell not empty")
        self._set_pos(agent, pos)

    def remove_agent(self, agent) -> None:
        """Take ``agent`` off the grid (its ``pos`` becomes None)."""
        self._set_pos(agent, None)

    def move_agent(self, agent, pos) -> None:
        """Move ``agent`` to ``pos``."""
        pos = self.torus_adj(pos)
        if self._single and current() is None and not self.is_cell_empty(pos):
            raise Exception("Cell not empty")
        self._set_pos(agent, pos)

    # -------------------------------------------------------------- queries
    def get_neighborhood(self, pos, moore: bool, include_center: bool = False, radius: int = 1):
        """Positions around ``pos`` (a list of tuples; traced: a padded list of positions)."""
        ctx = current()
        if ctx is not None:
            p = self._as_traced_pos(pos)
            ids, ok = self.geom.traced_neighbours(ctx, p._mj_idx, p._mj_valid, radius, moore,
                                                  include_center)
            return TracedList(ids, ok, wrap=self._wrap_pos)
        idx = self.geom.index_of(pos)
        ids = self.geom.neighbour_table(int(radius), moore, include_center)[idx]
        seen, out = set(), []
        for i in ids.tolist():
            if i >= 0 and i not in seen:
                seen.add(i)
                out.append(self.geom.coord_of(i))
        return out

    def iter_neighborhood(self, pos, moore, include_center=False, radius=1):
        return iter(self.get_neighborhood(pos, moore, include_center, radius))

    def _agents_at(self, ids_list):
        """Eager: agents in the given cell ids."""
        occ = self.geom.host_occupancy(self._model) if self._model is not None else {}
        return [t.handle(r) for i in ids_list for t, r in occ.get(i, [])]

    def _traced_agents(self, positions):
        ctx = current()
        if isinstance(positions, TracedList):
            ids, ok = positions.values, positions.mask
        else:
            ps = [self._as_traced_pos(p) for p in positions]
            ids = jnp.stack([p._mj_idx for p in ps])
            ok = jnp.stack([p._mj_valid for p in ps])
        lists = []
        for t in self.geom.tables(self._model):
            slots, _ = self.geom.traced_index(ctx, t)
            rows = slots[jnp.clip(ids, 0, None)]
            lists.append(TracedList(rows.reshape(-1), ((rows >= 0) & ok[:, None]).reshape(-1), table=t))
        if len(lists) != 1:
            return MultiList(lists)
        return lists[0]

    def get_cell_list_contents(self, cell_list):
        """Agents in the given positions (one ``(x, y)`` or a list of them)."""
        if isinstance(cell_list, (tuple, TracedPos)) and len(cell_list) == 2 and not isinstance(
                cell_list[0], (tuple, list)):
            cell_list = [cell_list]
        if current() is not None:
            return self._traced_agents(cell_list)
        return self._agents_at([self.geom.index_of(p) for p in cell_list])

    def get_neighbors(self, pos, moore, include_center=False, radius=1):
        """Agents in the neighbourhood of ``pos``."""
        return self.get_cell_list_contents(self.get_neighborhood(pos, moore, include_center, radius))

    def iter_neighbors(self, pos, moore, include_center=False, radius=1):
        return iter(self.get_neighbors(pos, moore, include_center, radius))

    def is_cell_empty(self, pos) -> bool:
        if current() is not None:
            return self._traced_agents([pos]).count() == 0
        return not self._agents_at([self.geom.index_of(pos)])

    def __getitem__(self, pos):
        return self.get_cell_list_contents([pos])

    def coord_iter(self):
        for x, y in itertools.product(range(self.width), range(self.height)):
            yield self.get_cell_list_contents([(x, y)]), (x, y)

    @property
    def empties(self) -> set:
        return {(x, y) for _, (x, y) in self.coord_iter() if self.is_cell_empty((x, y))}

    def exists_empty_cells(self) -> bool:
        return bool(self.empties)

    def move_to_empty(self, agent) -> None:
        empties = sorted(self.empties)
        if not empties:
            raise Exception("ERROR: No empty cells")
        self.move_agent(agent, agent.random.choice(empties))


class MultiGrid(_Grid):
    """A grid where each cell may hold any number of agents (Mesa's ``MultiGrid``)."""


class SingleGrid(_Grid):
    """A grid where each cell holds at most one agent (eager placement checks only so far)."""

    _single = True
