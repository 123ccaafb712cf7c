"""Orthogonal grids of ``mesa_jax.discrete_space`` (Mesa's ``OrthogonalMooreGrid`` etc.)."""

from __future__ import annotations

import random as _random

import jax.numpy as jnp
import numpy as np

from .._context import current
from .._gridindex import GridGeometry, pick_empty
from .._random import _EMPTY
from ..errors import UnsupportedError
from ._cells import Cell, CellCollection, TracedCell
from ._hex import Y_EVEN, Y_ODD, HexGeometry, step_table
from ._layers import EmptyLayer, PropertyLayer

__all__ = ["DiscreteSpace", "Grid", "HexGrid", "OrthogonalMooreGrid", "OrthogonalVonNeumannGrid"]

# attributes of Mesa's grid cells a layer may not shadow (``Cell.__slots__`` and the
# dynamic ``GridCell`` class's own names)
_CELL_NAMES = {"__dict__", "_agents", "capacity", "connections", "coordinate", "properties",
               "random", "_mesa_properties", "__module__", "__doc__"}


def _check_capacity(capacity):
    if capacity is not None and not isinstance(capacity, (float, int)):
        raise ValueError("Capacity must be a number or None.")
    if capacity is not None and capacity == float("inf"):
        return None
    return capacity


class DiscreteSpace:
    """What grids and networks share: cells by id, capacity, random, empties."""

    _moore = True
    _cell_class = Cell

    def __init__(self, geom, capacity, random):
        self.capacity = capacity
        self.random = random if random is not None else _random.Random()
        self.geom = geom
        self._cell_objs = [None] * self.geom.num_cells
        self._model = None

    def _bind(self, model):
        if self._model is None:
            self._model = model

    def _layer(self, name):
        """The property layer called ``name``, or None."""
        return None

    def _cell(self, idx):
        idx = int(idx)
        c = self._cell_objs[idx]
        if c is None:
            c = self._cell_objs[idx] = self._cell_class(self, idx)
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
        start of the agent call: the empty cells are listed once, each agent draws a slot)."""
        ctx = current()
        if ctx is not None:
            idx, n = pick_empty(self.geom.traced_counts(ctx) == 0)
            # Mesa: IndexError from `random.choice` (a full Grid loops forever there)
            ctx.report_error(_EMPTY, n == 0)
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
        if not all(isinstance(d, (int, np.integer)) and d > 0 for d in dimensions):
            raise ValueError("Dimensions must be a list of positive integers.")
        dims = tuple(int(d) for d in dimensions)
        if len(dims) != 2:
            raise NotImplementedError("mesa_jax grids are two-dimensional for now")
        if not isinstance(torus, bool):
            raise ValueError("Torus must be a boolean.")
        capacity = _check_capacity(capacity)
        self._mesa_property_layers = {}
        self.dimensions = dims
        self.torus = torus
        self._cell_class = type("GridCell", (Cell,), {})
        self._steps = {}
        super().__init__(self._geometry(dims, torus, capacity), capacity, random)
        self._mesa_property_layers["empty"] = EmptyLayer(self)

    def _geometry(self, dims, torus, capacity):
        return GridGeometry(dims[0], dims[1], torus, "_mj_cell", capacity=capacity)

    @property
    def width(self) -> int:
        return self.dimensions[0]

    @property
    def height(self) -> int:
        return self.dimensions[1]

    # ---------------------------------------------------------- connections
    def _offsets(self):
        """(offsets of cells with even y, offsets of cells with odd y), Mesa's order."""
        offs = tuple(self.geom.offsets(1, self._moore, False))
        return offs, offs

    def step_table(self, offset):
        """int32 [cells]: the cell each cell connects to by ``offset`` (-1: none)."""
        offset = tuple(int(v) for v in offset)
        tab = self._steps.get(offset)
        if tab is None:
            even, odd = self._offsets()
            tab = self._steps[offset] = step_table(self.geom, offset, (offset in even, offset in odd))
        return tab

    def _connections(self, idx):
        even, odd = self._offsets()
        offs = odd if self.geom.coord_of(idx)[1] % 2 else even
        out = {}
        for o in offs:
            j = int(self.step_table(o)[idx])
            if j >= 0:
                out[o] = self._cell(j)
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.dimensions}, torus={self.torus})"

    # ------------------------------------------------------ property layers
    def _layer(self, name):
        return self.__dict__.get("_mesa_property_layers", {}).get(name)

    def __getattr__(self, name):
        layers = self.__dict__.get("_mesa_property_layers")
        if layers is None or name.startswith("__"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        try:
            return layers[name]
        except KeyError:
            raise AttributeError(
                f"'{type(self).__name__}' object has no property layer called '{name}'") from None

    def __setattr__(self, key, value):
        layers = self.__dict__.get("_mesa_property_layers")
        if layers is not None and key in layers:
            raise AttributeError(
                f"'{type(self).__name__}' object already has a property layer with name '{key}'")
        super().__setattr__(key, value)

    def _bind(self, model):
        super()._bind(model)
        self._attach_layers()

    def _mj_attach_state(self, model):
        """Called before a compiled model's state is split: the layers become state."""
        self._bind(model)

    def _attach_layers(self):
        model = self._model
        if model is None:
            return
        grids = model.__dict__.setdefault("_mj_layer_grids", [])
        if not any(g is self for g in grids):
            grids.append(self)
        index = next(i for i, g in enumerate(grids) if g is self)
        for layer in self._mesa_property_layers.values():
            layer._mj_attach(model, index)

    def create_property_layer(self, name: str, default_value=0.0, dtype=float):
        """Add a new layer filled with ``default_value``; returns it."""
        layer = PropertyLayer(name, self.dimensions, default_value=default_value, dtype=dtype)
        self.add_property_layer(layer)
        return layer

    def add_property_layer(self, layer: PropertyLayer):
        """Add a layer (its dimensions must be the grid's, its name new)."""
        if current() is not None:
            raise UnsupportedError("adding a property layer inside a step",
                                   "create the layers in `Model.__init__`")
        if tuple(layer.dimensions) != tuple(self.dimensions):
            raise ValueError("Dimensions of property layer do not match the dimensions of the grid")
        if layer.name in self._mesa_property_layers:
            raise ValueError(f"Property layer {layer.name} already exists.")
        if layer.name in _CELL_NAMES or layer.name in self._cell_class.__dict__:
            raise ValueError(
                f"Property layer {layer.name} clashes with existing attribute in GridCell")
        self._mesa_property_layers[layer.name] = layer
        layer._mj_grid = self
        self._attach_layers()

    def remove_property_layer(self, property_name: str):
        """Remove the layer called ``property_name`` (KeyError if there is none)."""
        if current() is not None:
            raise UnsupportedError("removing a property layer inside a step",
                                   "remove it between steps")
        layer = self._mesa_property_layers[property_name]
        del self._mesa_property_layers[property_name]
        layer._mj_detach()
        layer._mj_grid = None

    def set_property(self, property_name: str, value, condition=None):
        """``set_cells`` on the layer called ``property_name``."""
        self._mesa_property_layers[property_name].set_cells(value, condition)

    def modify_properties(self, property_name: str, operation, value=None, condition=None):
        """``modify_cells`` on the layer called ``property_name``."""
        self._mesa_property_layers[property_name].modify_cells(operation, value, condition)

    def get_neighborhood_mask(self, coordinate, include_center: bool = True, radius: int = 1):
        """A boolean array of the grid's shape, True on the neighbourhood of ``coordinate``."""
        ctx = current()
        if ctx is None:
            cell = self[tuple(coordinate)]
            mask = np.zeros(self.dimensions, dtype=bool)
            for c in cell.get_neighborhood(radius=radius, include_center=include_center):
                mask[c.coordinate] = True
            return mask
        x, y = coordinate
        idx = jnp.asarray(x, jnp.int32) * self.height + jnp.asarray(y, jnp.int32)
        tc = TracedCell(self, idx, True)
        coll = tc.get_neighborhood(radius=radius, include_center=include_center)
        n = self.geom.num_cells
        lst = coll.cells
        mask = jnp.zeros(n, bool).at[jnp.where(lst.mask, lst.values, n)].set(True, mode="drop")
        return mask.reshape(self.dimensions)

    def select_cells(self, conditions=None, extreme_values=None, masks=None,
                     only_empty: bool = False, return_list: bool = True):
        """Cells meeting layer ``conditions``, ``extreme_values`` ("highest"/"lowest") and
        ``masks`` (and empty with ``only_empty``): coordinates, or the mask."""
        traced = current() is not None
        xp = jnp if traced else np
        if traced and return_list:
            raise UnsupportedError(
                "`grid.select_cells(..., return_list=True)` (a list of coordinates) in a compiled step",
                "use `return_list=False` (a boolean mask)")
        combined = xp.ones(self.dimensions, dtype=bool)
        if masks is not None:
            for m in (masks if isinstance(masks, list) else [masks]):
                combined = xp.logical_and(combined, m)
        if only_empty:
            combined = xp.logical_and(combined, self._mesa_property_layers["empty"].data)
        for name, condition in (conditions or {}).items():
            combined = xp.logical_and(combined, condition(self._mesa_property_layers[name].data))
        for name, mode in (extreme_values or {}).items():
            values = self._mesa_property_layers[name].data
            if mode == "highest":
                target = xp.max(xp.where(combined, values, -xp.inf)) if traced else \
                    np.ma.masked_array(values, mask=~combined).max()
            elif mode == "lowest":
                target = xp.min(xp.where(combined, values, xp.inf)) if traced else \
                    np.ma.masked_array(values, mask=~combined).min()
            else:
                raise ValueError(f"Invalid mode {mode}. Choose from 'highest' or 'lowest'.")
            combined = xp.logical_and(combined, values == target)
        if return_list:
            return list(zip(*np.where(combined)))
        return combined


class OrthogonalMooreGrid(Grid):
    """Grid where each cell connects to its 8 neighbours."""

    _moore = True


class OrthogonalVonNeumannGrid(Grid):
    """Grid where each cell connects to its 4 orthogonal neighbours."""

    _moore = False


class HexGrid(Grid):
    """Grid with hexagonal tiling: six neighbours, offsets by the parity of ``y`` (Mesa's)."""

    def _geometry(self, dims, torus, capacity):
        return HexGeometry(dims[0], dims[1], torus, "_mj_cell", capacity=capacity)

    def _offsets(self):
        return Y_EVEN, Y_ODD
