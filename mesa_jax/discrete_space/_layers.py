"""Property layers of discrete grids (Mesa's ``mesa.discrete_space.PropertyLayer``).

A layer is a named array with one value per cell. Eagerly its data is a numpy array with
the dtype Mesa would give. Once the layer's grid belongs to a model (an agent was placed
on it, or the model holds the grid as an attribute when a step is compiled) the data is
kept on the model as the state attribute ``_mj_layer_<grid>_<name>``, so that a compiled
step reads and writes it as a traced array like any other model state (and batched
activation, claim rounds and replays carry it without knowing about layers).

Inside a compiled step:

* ``cell.sugar`` gathers the cell's value (an agent sees its own earlier writes);
* from an agent's step (or a vectorised ``for`` loop over cells), ``cell.sugar = v`` keeps
  one random writer per cell and ``cell.sugar += v`` / ``-= v`` add up over all writers
  (the same effects as writes to other agents), applied after the call or loop;
* from ``Model.step``, writes (and ``set_cells`` / ``modify_cells``) apply at once.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .._context import Effect, current
from ..errors import MesaJaxError, UnsupportedError

__all__ = ["PropertyLayer", "EmptyLayer", "ufunc_requires_additional_input"]


def ufunc_requires_additional_input(ufunc):
    """Whether a numpy ufunc takes a second operand (Mesa's helper)."""
    return ufunc.nargs > 1


def _jnp_function(fn):
    """The jax.numpy twin of a numpy function or ufunc (else ``fn`` itself)."""
    if isinstance(fn, np.ufunc) or getattr(fn, "__module__", "") in ("numpy", "numpy.core.fromnumeric"):
        twin = getattr(jnp, getattr(fn, "__name__", ""), None)
        if twin is not None:
            return twin
    return fn


def write_layer(cell, tcell, layer, value, add=(False, None)):
    """``cell.<layer> = value`` inside a compiled step; ``add=(True, delta)`` for
    ``+=``/``-=`` (``_ops.augattr`` calls the cell's ``_mj_augattr``), which add up."""
    if add[0]:
        layer._mj_write(tcell, add[1], add=True)
    else:
        layer._mj_write(tcell, value)


class _Sink:
    """Looks like an agent table to ``TraceContext.apply_effects``: ``cols[key]`` is the
    layer's data, flat (cell id order)."""

    def __init__(self, layer):
        self.layer = layer

    @property
    def cols(self):
        return self

    def __getitem__(self, key):
        return jnp.asarray(current().model.__dict__[key]).reshape(-1)

    def __setitem__(self, key, value):
        current().model.__dict__[key] = value.reshape(tuple(self.layer.dimensions))


class PropertyLayer:
    """A named array of values, one per cell of a grid (Mesa's ``PropertyLayer``)."""

    def __init__(self, name: str, dimensions, default_value=0.0, dtype=float):
        """Create the layer filled with ``default_value``.

        Arguments:
            name: the layer's name (cells get an attribute of that name).
            dimensions: the grid's dimensions.
            default_value: the initial value of every cell.
            dtype: the values' type (Python or numpy).
        """
        self.name = name
        self.dimensions = dimensions
        if not isinstance(default_value, dtype):
            warnings.warn(
                f"Default value {default_value} ({type(default_value).__name__}) might not be "
                f"best suitable with dtype={dtype.__name__}.",
                UserWarning,
                stacklevel=2,
            )
        self._mj_host = np.full(self.dimensions, default_value, dtype=dtype)
        self._mj_np_dtype = self._mj_host.dtype
        self._mj_grid = None
        self._mj_model = None
        self._mj_key = None
        self._mj_sink = _Sink(self)

    @classmethod
    def from_data(cls, name: str, data):
        """A layer holding (a copy of) the numpy array ``data``."""
        data = np.asarray(data)
        layer = cls(name, data.shape, default_value=data[(0,) * data.ndim], dtype=data.dtype.type)
        layer.set_cells(data)
        return layer

    def __repr__(self):
        return f"PropertyLayer({self.name!r}, {tuple(self.dimensions)})"

    # -------------------------------------------------------------- storage
    def _mj_attach(self, model, index):
        """Keep the data on ``model`` (state attribute) from now on."""
        if self._mj_key is not None:
            return
        key = f"_mj_layer_{index}_{self.name}"
        model.__dict__[key] = self._mj_host
        model.__dict__["_mj_state_attrs"].add(key)
        self._mj_model, self._mj_key, self._mj_host = model, key, None
        compiled = model.__dict__.get("_mj_compiled")
        if compiled is not None:
            compiled.invalidate()

    def _mj_detach(self):
        if self._mj_key is None:
            return
        model, key = self._mj_model, self._mj_key
        self._mj_host = self._host()
        model.__dict__.pop(key, None)
        model.__dict__["_mj_state_attrs"].discard(key)
        compiled = model.__dict__.get("_mj_compiled")
        if compiled is not None:
            compiled.invalidate()
        self._mj_model = self._mj_key = None

    def _host(self):
        """The numpy data (writable; converted from device after compiled steps)."""
        if self._mj_key is None:
            return self._mj_host
        d = self._mj_model.__dict__
        v = d[self._mj_key]
        if not isinstance(v, np.ndarray) or v.dtype != self._mj_np_dtype or not v.flags.writeable:
            if isinstance(v, jax.core.Tracer):
                raise MesaJaxError(f"internal: layer {self.name} read outside its trace")
            v = d[self._mj_key] = np.array(v, dtype=self._mj_np_dtype)  # device values: float32
        return v

    def _set_host(self, arr):
        if self._mj_key is None:
            self._mj_host = arr
        else:
            self._mj_model.__dict__[self._mj_key] = arr
        self._mj_np_dtype = arr.dtype

    def _traced_key(self, ctx):
        if self._mj_key is None or self._mj_model is not ctx.model:
            raise UnsupportedError(
                f"property layer `{self.name}` of a grid the compiled model does not hold",
                "keep the grid as a model attribute (`self.grid = ...`) or place an agent on it "
                "in `Model.__init__`")
        return self._mj_key

    def _traced(self, ctx):
        return jnp.asarray(ctx.model.__dict__[self._traced_key(ctx)])

    def _model_write(self, ctx, new, what):
        if ctx.frame.agent is not None or getattr(ctx.frame, "defer", False):
            raise UnsupportedError(
                f"`{what}` on the whole property layer `{self.name}` from an agent's step or "
                f"inside a `for` loop over a traced collection",
                f"call it in `Model.step`, or write single cells (`self.cell.{self.name} = ...`)")
        old = self._traced(ctx)
        ctx.write_model_attr(ctx.model, self._traced_key(ctx), jnp.asarray(new).astype(old.dtype))

    # ----------------------------------------------------------- data access
    @property
    def data(self):
        """The values (numpy eagerly, a traced array inside a compiled step)."""
        ctx = current()
        if ctx is not None:
            return self._traced(ctx)
        return self._host()

    @data.setter
    def data(self, value):
        self.set_cells(value)

    @property
    def _mesa_data(self):
        return self.data

    def set_cells(self, value, condition=None):
        """Set every cell to ``value``, or only those where ``condition(value)`` holds
        (applied element by element, as Mesa's ``np.vectorize``)."""
        ctx = current()
        if ctx is not None:
            old = self._traced(ctx)
            if condition is None:
                new = jnp.broadcast_to(jnp.asarray(value), old.shape)
            else:
                new = jnp.where(jnp.vectorize(condition)(old), jnp.asarray(value), old)
            self._model_write(ctx, new, "set_cells")
            return
        data = self._host()
        if condition is None:
            np.copyto(data, value)
        else:
            np.copyto(data, value, where=np.vectorize(condition)(data))

    def modify_cells(self, operation, value=None, condition=None):
        """Apply ``operation`` (a numpy ufunc, with ``value`` if it takes two operands, or a
        function of one value) to every cell, or to those where ``condition`` holds."""
        if isinstance(operation, np.ufunc) and ufunc_requires_additional_input(operation) \
                and value is None:
            raise ValueError("This ufunc requires an additional input value.")
        ctx = current()
        if ctx is not None:
            old = self._traced(ctx)
            if isinstance(operation, np.ufunc):
                op = _jnp_function(operation)
                new = op(old, value) if ufunc_requires_additional_input(operation) else op(old)
            else:
                new = jnp.vectorize(operation)(old)
            if condition is not None:
                new = jnp.where(jnp.vectorize(condition)(old), new, old)
            self._model_write(ctx, new, "modify_cells")
            return
        data = self._host()
        where = np.ones_like(data, dtype=bool)
        if condition is not None:
            where = np.vectorize(condition)(data)
        if isinstance(operation, np.ufunc):
            new = operation(data, value) if ufunc_requires_additional_input(operation) else operation(data)
        else:
            new = np.vectorize(operation)(data)
        self._set_host(np.where(where, new, data))

    def select_cells(self, condition, return_list=True):
        """Cells where ``condition(data)`` holds: a list of coordinates, or the mask."""
        ctx = current()
        if ctx is not None:
            if return_list:
                raise UnsupportedError(
                    "`select_cells(..., return_list=True)` (a list of coordinates) in a compiled step",
                    "use `return_list=False` (a boolean mask) and index the layer with it")
            return condition(self._traced(ctx))
        mask = condition(self._host())
        if return_list:
            return list(zip(*np.where(mask)))
        return mask

    def aggregate(self, operation):
        """``operation(data)`` (e.g. ``np.sum``)."""
        if current() is not None:
            return _jnp_function(operation)(self.data)
        return operation(self._host())

    # -------------------------------------------------------- single cells
    def _mj_get(self, cell):
        """The value of one cell (eager ``Cell``)."""
        return self._host()[cell.coordinate]

    def _mj_put(self, cell, value):
        self._host()[cell.coordinate] = value

    def _mj_read(self, tcell):
        """The value of a traced cell, with the acting agent's own earlier writes."""
        ctx = current()
        flat = self._traced(ctx).reshape(-1)
        v = flat[jnp.clip(tcell._mj_idx, 0, flat.shape[0] - 1)]
        frame = ctx.frame
        if frame.effects:
            for e in frame.effects:
                if e.table is self._mj_sink:
                    hit = jnp.logical_and(jnp.asarray(True if e.mask is None else e.mask),
                                          e.rows == tcell._mj_idx)
                    val = jnp.asarray(e.values).astype(v.dtype)
                    v = jnp.where(hit, val if e.kind == "set" else v + val, v)
        return v

    def _mj_write(self, tcell, value, add=False):
        """``cell.<name> = value`` (or ``+= value`` when ``add``) on a traced cell."""
        ctx = current()
        key = self._traced_key(ctx)
        flat = self._traced(ctx).reshape(-1)
        value = jnp.asarray(value)
        if value.ndim:
            raise UnsupportedError(f"assigning an array to one cell of layer `{self.name}`",
                                   "assign one number per cell")
        if jnp.issubdtype(flat.dtype, jnp.integer) and jnp.issubdtype(value.dtype, jnp.floating):
            value = jnp.trunc(value)
        value = value.astype(flat.dtype)
        frame = ctx.frame
        valid = tcell._mj_valid
        if frame.agent is None and not getattr(frame, "defer", False):
            n = flat.shape[0]
            at = flat.at[jnp.where(valid, tcell._mj_idx, n)]
            new = at.add(value, mode="drop") if add else at.set(value, mode="drop")
            ctx.write_model_attr(ctx.model, key, new.reshape(tuple(self.dimensions)))
            return
        mask = valid if frame.mask is None else jnp.logical_and(frame.mask, valid)
        frame.effects.append(Effect("add" if add else "set", self._mj_sink, key, tcell._mj_idx, value, mask))


class EmptyLayer(PropertyLayer):
    """Mesa's automatic ``empty`` layer: here it follows the agents (read only)."""

    def __init__(self, grid):
        self.name = "empty"
        self.dimensions = grid.dimensions
        self._mj_host = None
        self._mj_grid = grid
        self._mj_model = self._mj_key = None
        self._mj_sink = None
        self._mj_np_dtype = np.dtype(bool)

    def _mj_attach(self, model, index):
        pass

    def _mj_detach(self):
        pass

    def _host(self):
        grid = self._mj_grid
        out = np.ones(grid.geom.num_cells, bool)
        if grid._model is not None:
            occ = grid.geom.host_occupancy(grid._model)
            out[[i for i, lst in occ.items() if lst]] = False
        return out.reshape(tuple(self.dimensions))

    def _traced(self, ctx):
        return (self._mj_grid.geom.traced_counts(ctx) == 0).reshape(tuple(self.dimensions))

    def _refuse(self, *args, **kwargs):
        raise MesaJaxError("the `empty` layer follows the agents in mesa_jax; it cannot be written")

    set_cells = modify_cells = _mj_put = _mj_write = _refuse

    def _mj_get(self, cell):
        return cell.is_empty

    def _mj_read(self, tcell):
        return tcell.is_empty
