"""``ContinuousSpace`` and ``ContinuousSpaceAgent`` (Mesa 3's experimental continuous space).

Eagerly every method works on numpy copies of the positions (float32 columns, so values
differ from Mesa's float64 in the last digits). Inside a compiled step:

* ``agent.position`` is the agent's ``[d]`` row; assigning wraps it on a torus, and off a
  non-torus space raises Mesa's ``ValueError`` after the step;
* ``get_neighbors_in_radius`` / ``space.get_agents_in_radius`` return a traced list of
  agents and their distances as a :class:`~mesa_jax._masked.MaskedRows`, from a cell list
  (or every row, when that is cheaper); with several agent classes in the space, a
  ``MultiList`` (one list per class) and the distances concatenated in the same order;
* ``calculate_difference_vector`` / ``calculate_distances`` return ``MaskedRows``;
* ``get_nearest_neighbors`` / ``get_k_nearest_agents`` compare against every agent (top-k),
  fine for thousands of agents.
"""

from __future__ import annotations

import itertools
import math
import random as _random
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..._collections import MultiList, TracedList
from ..._context import current, is_traced
from ..._gridindex import GridGeometry, build_cell_index
from ..._masked import MaskedRows, norm_last
from ...agent import Agent, AgentSet
from ...errors import UnsupportedError, register_step_error

__all__ = ["ContinuousSpace", "ContinuousSpaceAgent"]

_COLUMN = "_mj_xy"
_uid = itertools.count()
_OUT_OF_BOUNDS = register_step_error(
    "continuous_out_of_bounds",
    lambda p: ValueError(f"point is outside the bounds of the space (agent {p[0]})"))


_ALL_PAIRS_ROWS = 512  # up to this many rows radius queries test every row
# A cell-list candidate costs about 3x an all-pairs one (gathers by row id instead of
# broadcasts; 4,000 boids: 8.5 ns vs 2.9 ns per candidate, docs/benchmarks.md), so the
# cell list is used only while it offers fewer than a third as many candidates.
_CELL_CANDIDATE_COST = 3


class _ContinuousGeometry:
    """What the compiler needs to know about a continuous space (see ``_gridindex``)."""

    capacity = None  # no capacity claims
    tables_as_data = False

    def __init__(self, space):
        self.space = space
        self.column = _COLUMN
        self.uid = next(_uid)
        self._grids: dict = {}

    def signature(self):
        return (tuple(map(tuple, self.space.dimensions.tolist())), self.space.torus)

    def index_flag(self, table):
        return f"cell_index:Continuous:{table.cls.__name__}"

    def tables(self, model):
        return [t for t in model._mj_tables.values()
                if t.spaces.get(_COLUMN) is self and _COLUMN in t.cols]

    # --------------------------------------------------------------- cell list
    def _radius_bound(self, ctx, radius):
        """The radius the cell list is built for: the radius itself when it is a Python
        number, else a host-chosen bound (the largest value of the attribute it was read
        from), grown and replayed when a query asks more."""
        if not is_traced(radius):
            return float(radius)
        name = "cradius:Continuous:" + "+".join(sorted(t.cls.__name__ for t in self.tables(ctx.model)))
        bound = ctx.capacities.get(name)
        if bound is None:
            bound = ctx.concrete_max(radius)
            if bound is None or not bound > 0:
                bound = float(max(self.space.size)) / 8
            if ctx.discovery:
                ctx.capacities[name] = bound
        ctx.flag(name, jnp.any(radius > bound))
        return float(bound)

    def _cell_grid(self, table, bound):
        size = self.space.size
        limit = max(1, int(math.sqrt(table.cap)))  # no more cells per axis than that
        shape = tuple(int(min(limit, max(1, math.floor(s / bound)))) for s in size)
        grid = self._grids.get(shape)
        if grid is None:
            grid = self._grids[shape] = GridGeometry(shape[0], shape[1], self.space.torus, None)
        return grid

    def _cell_of(self, grid, pos):
        lo = jnp.asarray(self.space.dimensions[:, 0], jnp.float32)
        width = jnp.asarray(self.space.size / np.array([grid.width, grid.height]), jnp.float32)
        c = jnp.floor((pos - lo) / width).astype(jnp.int32)
        cx = jnp.clip(c[..., 0], 0, grid.width - 1)
        cy = jnp.clip(c[..., 1], 0, grid.height - 1)
        return cx * grid.height + cy

    def query(self, ctx, table, point, radius):
        """(rows [M], ok [M], distances [M]) of ``table``'s agents within ``radius``."""
        if self.space.ndims != 2:
            raise UnsupportedError("radius queries in a continuous space that is not 2D",
                                   "use a 2D space")
        bound = self._radius_bound(ctx, radius)
        grid = self._cell_grid(table, bound)
        name = self.index_flag(table)
        k = ctx.capacities.get(name, 8)
        table_nb = grid.neighbour_table(1, True, True)
        if table.cap <= _ALL_PAIRS_ROWS or \
                _CELL_CANDIDATE_COST * k * table_nb.shape[1] >= table.cap:
            # few agents, or agents crowd so that the cells around a point may hold more
            # than a third as many candidates as there are rows (flocks): every row is a
            # candidate, no index to build or outgrow (each growth is a recompile)
            rows = jnp.arange(table.cap, dtype=jnp.int32)
            ok = table.alive
        else:
            rows, ok = self._cell_candidates(ctx, table, grid, table_nb, name, k, point)
        delta = self.space._min_image(table.cols[_COLUMN][jnp.clip(rows, 0, None)] - point)
        dist = norm_last(delta)
        return rows, ok & (dist <= radius), dist

    def _cell_candidates(self, ctx, table, grid, table_nb, name, k, point):
        """(rows, ok) of the agents in the cells around ``point`` (the cell list)."""
        key = ("clist", self.uid, id(table), grid.width, grid.height)
        hit = ctx.indexes.get(key)
        if hit is None:
            cells = self._cell_of(grid, table.cols[_COLUMN])
            slots, _, needed = build_cell_index(cells, table.alive, grid.num_cells, k)
            ctx.need(name, needed, k)
            hit = ctx.indexes[key] = slots
        nb = jnp.asarray(table_nb)[self._cell_of(grid, point)]
        rows = hit[jnp.clip(nb, 0, None)]
        ok = (rows >= 0) & (nb >= 0)[:, None]
        return rows.reshape(-1), ok.reshape(-1)


class ContinuousSpace:
    """A continuous space of ``dimensions`` ``[[min, max], ...]`` (Mesa's experimental one)."""

    def __init__(self, dimensions, torus: bool = False, random=None, n_agents: int = 100) -> None:
        """Create the space (``n_agents`` is accepted for compatibility; columns grow)."""
        if random is None:
            warnings.warn(
                "Random number generator not specified, this can make models non-reproducible. "
                "Please pass a random number generator explicitly", UserWarning, stacklevel=2)
            random = _random.Random()
        self.random = random
        self.dimensions = np.asanyarray(dimensions, dtype=float)
        self.ndims = self.dimensions.shape[0]
        self.size = self.dimensions[:, 1] - self.dimensions[:, 0]
        self.center = np.sum(self.dimensions, axis=1) / 2
        self.torus = torus
        self.geom = _ContinuousGeometry(self)
        self._model = None

    x_min = property(lambda self: self.dimensions[0, 0])
    x_max = property(lambda self: self.dimensions[0, 1])
    y_min = property(lambda self: self.dimensions[1, 0])
    y_max = property(lambda self: self.dimensions[1, 1])
    width = property(lambda self: self.size[0])
    height = property(lambda self: self.size[1])

    # ------------------------------------------------------------- helpers
    def _bind(self, table):
        if table.grids.get(_COLUMN) is None:
            table.grids[_COLUMN] = self
            table.spaces[_COLUMN] = self.geom
            if _COLUMN not in table.cols:
                table.set(0, _COLUMN, np.zeros(self.ndims, np.float32))
                table.cols[_COLUMN][:] = 0
        elif table.grids[_COLUMN] is not self:
            raise UnsupportedError(f"`{table.cls.__name__}` agents in two continuous spaces",
                                   "use one space per agent class")
        if self._model is None:
            self._model = table.model

    def _tables(self):
        if self._model is None:
            return []
        return self.geom.tables(self._model)

    def _traced_tables(self):
        tables = self._tables()
        if not tables:
            raise UnsupportedError("a query on a continuous space no agent was placed in before "
                                   "the step", "place the agents in `Model.__init__`")
        return tables

    def _min_image(self, delta):
        """Difference vectors the short way round a torus (Mesa's rule)."""
        if not self.torus:
            return delta
        size = jnp.asarray(self.size, jnp.result_type(delta))
        inverse = delta - jnp.sign(delta) * size
        return jnp.where(jnp.abs(delta) < jnp.abs(inverse), delta, inverse)

    def _host_rows(self, agents=None):
        """(tables and rows, positions float64 [n, d]) of ``agents`` (all when None)."""
        if agents is None:
            agents = list(self.agents)
        pos = np.array([np.asarray(a._table.cols[_COLUMN])[a._row] for a in agents], dtype=float)
        return agents, pos.reshape(-1, self.ndims)

    def _traced_lists(self, agents):
        """One traced list per agent class of ``agents`` (all the space's agents when None)."""
        if agents is None:
            return [TracedList(jnp.arange(t.cap, dtype=jnp.int32), t.alive, table=t)
                    for t in self._traced_tables()]
        from ..._ops import traced_lists
        from ..._random import _as_list

        lists = traced_lists(agents)
        if lists is None or any(lst.table is None for lst in lists):
            return [_as_list(agents, "calculate_difference_vector")]
        return lists

    @staticmethod
    def _joined(lists, parts):
        """The agents of ``lists`` as one traced collection, and ``parts`` (one masked array
        per list) concatenated in the same order, as the agents' ``MaskedRows``."""
        agents = lists[0] if len(lists) == 1 else MultiList(lists)
        data = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        mask = lists[0].mask if len(lists) == 1 else jnp.concatenate([lst.mask for lst in lists])
        return agents, MaskedRows(data, mask)

    # ------------------------------------------------------------- queries
    @property
    def agents(self) -> AgentSet:
        out = []
        for t in self._tables():
            out.extend(t.handle(r) for r in t.alive_rows())
        return AgentSet(out, random=self.random)

    @property
    def agent_positions(self):
        if current() is not None:
            lists = self._traced_lists(None)
            return self._joined(lists, [lst.table.cols[_COLUMN] for lst in lists])[1]
        return self._host_rows()[1]

    def calculate_difference_vector(self, point, agents=None):
        """``positions - point`` for ``agents`` (all when None), the short way on a torus."""
        if current() is not None:
            lists = self._traced_lists(agents)
            parts = []
            for lst in lists:
                pos = lst.table.cols[_COLUMN][jnp.clip(lst.values, 0, None)]
                parts.append(self._min_image(pos - jnp.asarray(point, pos.dtype)))
            return self._joined(lists, parts)[1]
        _, pos = self._host_rows(None if agents is None else list(agents))
        delta = pos - np.asanyarray(point)
        if self.torus:
            inverse = delta - np.sign(delta) * self.size
            delta = np.where(np.abs(delta) < np.abs(inverse), delta, inverse)
        return delta

    def calculate_distances(self, point, agents=None, **kwargs):
        """(distances, agents) from ``point`` (Euclidean, the short way on a torus)."""
        if current() is not None:
            if kwargs:
                raise UnsupportedError("cdist keyword arguments in a compiled step",
                                       "use the Euclidean default")
            delta = self.calculate_difference_vector(point, agents)
            lists = self._traced_lists(agents)
            return MaskedRows(norm_last(delta.data), delta.mask), self._joined(lists, [delta.data])[0]
        agents, pos = self._host_rows(None if agents is None else list(agents))
        delta = self.calculate_difference_vector(point, agents)
        if self.torus or not kwargs:
            dists = np.sqrt(np.sum(delta ** 2, axis=1))
        else:
            from scipy.spatial.distance import cdist

            dists = cdist(np.asanyarray(point)[np.newaxis, :], pos, **kwargs)[0, :]
        return dists, agents

    def get_agents_in_radius(self, point, radius=1):
        """(agents, distances) within ``radius`` of ``point`` (inclusive)."""
        ctx = current()
        if ctx is not None:
            lists, dists = [], []
            for t in self._traced_tables():  # a cell list per class
                rows, ok, dist = self.geom.query(ctx, t, jnp.asarray(point, jnp.float32), radius)
                lists.append(TracedList(rows, ok, table=t))
                dists.append(dist)
            return self._joined(lists, dists)
        dists, agents = self.calculate_distances(point)
        keep = dists <= radius
        return [a for a, k in zip(agents, keep) if k], dists[keep]

    def get_k_nearest_agents(self, point, k=1):
        """(agents, distances) of the ``k`` agents nearest ``point``."""
        if current() is not None:
            dists, _ = self.calculate_distances(point)
            lists = self._traced_lists(None)
            d = jnp.where(dists.mask, dists.data, jnp.inf)
            k = min(k, d.shape[0])
            neg, idx = jax.lax.top_k(-d, k)
            ok = jnp.isfinite(neg)
            picked, at = [], 0
            for lst in lists:  # the k nearest, split by class (slots of other classes masked)
                mine = ok & (idx >= at) & (idx < at + lst.capacity)
                picked.append(TracedList(lst.values[jnp.clip(idx - at, 0, lst.capacity - 1)], mine,
                                         table=lst.table))
                at += lst.capacity
            return self._joined(picked, [-neg] * len(picked))
        dists, agents = self.calculate_distances(point)
        idx = np.argpartition(dists, k)[:k] if k < len(dists) else np.arange(len(dists))
        return [agents[i] for i in idx], dists[idx]

    def in_bounds(self, point) -> bool:
        p = jnp.asarray(point) if current() is not None else np.asanyarray(point)
        lo, hi = self.dimensions[:, 0], self.dimensions[:, 1]
        if current() is not None:
            return jnp.all((p >= lo) & (p <= hi))
        return bool(((p >= lo) & (p <= hi)).all())

    def torus_correct(self, point):
        if current() is not None:
            lo = jnp.asarray(self.dimensions[:, 0], jnp.float32)
            return lo + jnp.mod(jnp.asarray(point) - lo, jnp.asarray(self.size, jnp.float32))
        return self.dimensions[:, 0] + np.mod(np.asanyarray(point) - self.dimensions[:, 0], self.size)

    def __repr__(self):
        return f"ContinuousSpace({self.dimensions.tolist()}, torus={self.torus})"


class ContinuousSpaceAgent(Agent):
    """An agent with a ``position`` in a :class:`ContinuousSpace`."""

    def __init__(self, space: ContinuousSpace, model):
        """Create the agent and add it to ``space`` (at the origin until placed)."""
        super().__init__(model)
        self.space = space

    @property
    def space(self):
        return self._table.grids.get(_COLUMN)

    @space.setter
    def space(self, space):
        if space is None:
            return
        if current() is not None:
            if space is self._table.grids.get(_COLUMN):  # an agent born in this space
                return
            raise UnsupportedError("moving an agent to another space inside a step",
                                   "set `space` in `__init__`")
        space._bind(self._table)

    @property
    def position(self):
        ctx = current()
        if ctx is not None:
            return ctx.read_attr(self, _COLUMN)
        return np.asarray(self._table.cols[_COLUMN])[self._row].astype(float)

    @position.setter
    def position(self, value):
        space = self.space
        ctx = current()
        if ctx is not None:
            v = jnp.asarray(value, jnp.float32)
            inside = space.in_bounds(v)
            if space.torus:
                v = jnp.where(inside, v, space.torus_correct(v))
            else:
                ctx.report_error(_OUT_OF_BOUNDS, ~inside, [self.unique_id])
            ctx.write_attr(self, _COLUMN, v)
            return
        value = np.asanyarray(value, dtype=float)
        if not space.in_bounds(value):
            if space.torus:
                value = space.torus_correct(value)
            else:
                raise ValueError(f"point {value} is outside the bounds of the space")
        self._table.set(self._row, _COLUMN, value.astype(np.float32))

    @property
    def pos(self):
        return self.position

    @pos.setter
    def pos(self, value):
        pass

    def remove(self) -> None:
        super().remove()

    def _without_self(self, agents, dists):
        """Traced (agents, distances) with this agent's slot masked out."""
        lists = agents.lists if isinstance(agents, MultiList) else [agents]
        kept = [lst.with_mask(lst.mask & (lst.values != self._row)) if lst.table is self._table
                else lst for lst in lists]
        return self.space._joined(kept, [dists.data])

    def get_neighbors_in_radius(self, radius=1):
        """(agents, distances) within ``radius``, without this agent."""
        agents, dists = self.space.get_agents_in_radius(self.position, radius=radius)
        if current() is not None:
            return self._without_self(agents, dists)
        keep = np.asarray([a is not self for a in agents], dtype=bool)
        return [a for a, k in zip(agents, keep) if k], dists[keep] if len(agents) else dists

    def get_nearest_neighbors(self, k=1):
        """(agents, distances) of the ``k`` nearest other agents."""
        agents, dists = self.space.get_k_nearest_agents(self.position, k=k + 1)
        if current() is not None:
            return self._without_self(agents, dists)
        keep = np.asarray([a is not self for a in agents], dtype=bool)
        return [a for a, kk in zip(agents, keep) if kk], dists[keep]
