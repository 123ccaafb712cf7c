"""Orthogonal grids of ``mesa_jax.discrete_space`` (Mesa's ``OrthogonalMooreGrid`` etc.)."""

from __future__ import annotations

import random as _random

import jax.numpy as jnp

from .._context import current
from .._gridindex import GridGeometry
from .._random import _randint
from ._cells import Cell, CellCollection, TracedCell

__all__ = ["DiscreteSpace", "Grid", "OrthogonalMooreGrid", "OrthogonalVonNeumannGrid"]


def _check_capacity(capacity):
    if capacity is not None and not isinstance(capacity, (float, int)):
        raise ValueError("Capacity must be a number or None.")
    if capacity is not None and capacity == float("inf"):
        return None
    return capacity


class DiscreteSpace:
    """What grids and networks share: cells by id, capacity, random, empties."""

    _moore = True

    def __init__(self, geom, capacity, random):
        self.capacity = capacity
        self.random = random if random is not None else _random.Random()
        self.geom = geom
        self._cell_objs = [None] * self.geom.num_cells
        self._model = None

    def _bind(self, model):
        if self._model is None:
            self._model = model

    def _cell(self, idx):
        idx = int(idx)
        c = self._cell_objs[idx]
        if c is None:
            c = self._cell_objs[idx] = Cell(self, idx)
        return c

    def _wrap_cell(self, idx, ok):
        return TracedCell(self, idx, (idx >= 0) & ok)

    @property
    def all_cells(self) -> CellCollection:
        return CellCollection([self._cell(i) for i in range(self.geom.num_cells)], random=self.random)

    @property
    def _cells(self) -> dict:
        return {self.geom.coord_of(i): self._cell(i) for i in range(self.geom.num_cells)}

    def __iter__(self):
        return iter(self.all_cells)

    def __getitem__(self, key):
        return self._cell(self.geom.index_of(key))

    def _connections(self, idx):
        ids = self.geom.neighbour_table(1, self._moore, False)[idx]
        return {self.geom.coord_of(i): self._cell(i) for i in ids if i >= 0}

    @property
    def empties(self) -> CellCollection:
        return self.all_cells.select(lambda c: c.is_empty)

    def select_random_empty_cell(self) -> Cell:
        """A random cell holding no agent (traced: uniform over the empty cells at the
        start of the agent call, one binary search per agent)."""
        ctx = current()
        if ctx is not None:
            empty = self.geom.traced_counts(ctx) == 0
            csum = jnp.cumsum(empty.astype(jnp.int32))
            n = csum[-1]
            k = _randint(0, jnp.maximum(n, 1))
            idx = jnp.searchsorted(csum, k, side="right").astype(jnp.int32)
            return TracedCell(self, idx, n > 0)
        for _ in range(50):
            cell = self._cell(self.random.randrange(self.geom.num_cells))
            if cell.is_empty:
                return cell
        return self.random.choice(self.empties.cells)



class Grid(DiscreteSpace):
    """A 2D grid of cells; subclasses choose the neighbourhood (Moore or von Neumann)."""

    def __init__(self, dimensions, torus: bool = False, capacity=None, random=None,
                 cell_klass=Cell):
        """Create the grid.

        Arguments:
            dimensions: (width, height).
            torus: whether the edges wrap around.
            capacity: agents per cell (None: unlimited).
            random: a ``random.Random`` (Mesa passes the model's).
            cell_klass: accepted for compatibility; cells are mesa_jax ``Cell`` handles.
        """
        dims = tuple(int(d) for d in dimensions)
        if len(dims) != 2:
            raise NotImplementedError("mesa_jax grids are two-dimensional for now")
        capacity = _check_capacity(capacity)
        self.dimensions = dims
        self.torus = torus
        super().__init__(GridGeometry(dims[0], dims[1], torus, "_mj_cell", capacity=capacity),
                         capacity, random)

    @property
    def width(self) -> int:
        return self.dimensions[0]

    @property
    def height(self) -> int:
        return self.dimensions[1]

    def _connections(self, idx):
        offs = self.geom.offsets(1, self._moore, False)
        ids = self.geom.neighbour_table(1, self._moore, False)[idx]
        return {o: self._cell(i) for o, i in zip(offs, ids) if i >= 0}

    def __repr__(self):
        return f"{type(self).__name__}({self.dimensions}, torus={self.torus})"


class OrthogonalMooreGrid(Grid):
    """Grid where each cell connects to its 8 neighbours."""

    _moore = True


class OrthogonalVonNeumannGrid(Grid):
    """Grid where each cell connects to its 4 orthogonal neighbours."""

    _moore = False
