"""Mesa's legacy ``ContinuousSpace``: float positions, eager and inside compiled steps.

Positions are two agent-table columns: ``_mj_xy`` (float32 ``[2]``) and ``_mj_xy_on``
(``-1``: not in the space; otherwise the order in which agents were placed, which is the
order Mesa's ``get_neighbors`` lists them in). Eagerly the exact value an agent was placed
at is kept as well, so ``agent.pos``, distances and neighbour searches match Mesa's float64
arithmetic; inside a compiled step positions are float32 arrays ``[x, y]``.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._collections import MultiList, TracedList
from ._context import current
from ._legacy_errors import pack_f16, report
from .errors import UnsupportedError

__all__ = ["ContinuousSpace"]

_POS = "_mj_pos"  # the key agents look their ``pos`` space up under
_XY = "_mj_xy"
_ON = "_mj_xy_on"
_TRACED_PLACE = 1 << 30  # placement order given to agents first placed inside a step


def _traced(*xs):
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


class _Shape:
    """What a compiled program bakes in about the space (read by the compile fingerprint)."""

    def __init__(self, space):
        self.width = (space.x_min, space.x_max)
        self.height = (space.y_min, space.y_max)
        self.torus = space.torus

    def signature(self):
        return ("continuous", self.width, self.height, self.torus)


class ContinuousSpace:
    """A rectangle ``[x_min, x_max) x [y_min, y_max)`` where agents have float positions."""

    def __init__(self, x_max: float, y_max: float, torus: bool, x_min: float = 0, y_min: float = 0) -> None:
        """Create the space (``torus``: positions wrap round the edges)."""
        self.x_min = x_min
        self.x_max = x_max
        self.width = x_max - x_min
        self.y_min = y_min
        self.y_max = y_max
        self.height = y_max - y_min
        self.center = np.array(((x_max + x_min) / 2, (y_max + y_min) / 2))
        self.size = np.array((self.width, self.height))
        self.torus = torus
        self.geom = _Shape(self)
        self._model = None
        self._seq = 0
        self._exact: dict = {}  # (table id, row) -> the position as placed eagerly

    # ------------------------------------------------------------- binding
    def _bind(self, table):
        bound = table.grids.get(_POS)
        if bound is None:
            if current() is not None:
                raise UnsupportedError(
                    f"placing a `{table.cls.__name__}` in a space for the first time inside a step",
                    "place every agent of this class in `Model.__init__` (or before the first step)")
            table.grids[_POS] = self
            if _XY not in table.cols:
                table.set(0, _XY, np.zeros(2, np.float32))
                table.cols[_XY][:] = 0.0
            if _ON not in table.cols:
                table.set(0, _ON, np.int32(-1))
                table.cols[_ON][:] = -1
        elif bound is not self:
            raise UnsupportedError(f"`{table.cls.__name__}` agents in two different spaces",
                                   "use one legacy space per agent class")
        if self._model is None:
            self._model = table.model

    def _tables(self):
        ctx = current()
        model = ctx.model if ctx is not None else self._model
        if model is None:
            return []
        return [t for t in model._mj_tables.values() if t.grids.get(_POS) is self and _XY in t.cols]

    def _placed(self, agent):
        t = agent._table
        if t.grids.get(_POS) is not self:
            return False
        return int(np.asarray(t.cols[_ON])[agent._row]) >= 0

    # ------------------------------------------------------------ positions
    def _host_pos(self, table, row):
        """The eager position of a placed row: the exact placed value while it still matches."""
        xy = np.asarray(table.cols[_XY])[row]
        exact = self._exact.get((id(table), row))
        if exact is not None and np.array_equal(np.asarray(exact, np.float32), xy):
            return exact
        return (float(xy[0]), float(xy[1]))

    def _pos_of(self, agent):
        ctx = current()
        if ctx is not None:
            xy = ctx.read_attr(agent, _XY)
            on = ctx.read_attr(agent, _ON) >= 0
            return jnp.where(on, xy, jnp.nan)
        if not self._placed(agent):
            return None
        return self._host_pos(agent._table, agent._row)

    def _set_pos(self, agent, pos):
        """``agent.pos = pos``: move it there (None: take it off the space)."""
        if pos is None:
            self._write(agent, None)
        else:
            self._write(agent, self._adjusted(pos, agent))

    def _write(self, agent, pos, place=False):
        t = agent._table
        self._bind(t)
        ctx = current()
        if ctx is not None:
            from .space import _traced_handle

            agent = _traced_handle(agent)
            old_on = ctx.read_attr(agent, _ON)
            if pos is None:
                ctx.write_attr(agent, _ON, jnp.int32(-1))
                return
            ctx.write_attr(agent, _XY, jnp.asarray(pos, jnp.float32).reshape(2))
            ctx.write_attr(agent, _ON, jnp.where(old_on >= 0, old_on, _TRACED_PLACE).astype(jnp.int32))
            return
        key = (id(t), agent._row)
        if pos is None:
            t.set(agent._row, _ON, np.int32(-1))
            self._exact.pop(key, None)
            return
        t.set(agent._row, _XY, np.asarray(pos, np.float32).reshape(2))
        if place or int(np.asarray(t.cols[_ON])[agent._row]) < 0:
            self._seq += 1
            t.set(agent._row, _ON, np.int32(self._seq))
        self._exact[key] = pos

    # -------------------------------------------------------------- placing
    def place_agent(self, agent, pos) -> None:
        """Place ``agent`` at ``pos`` (wrapped on a torus; off a non-torus space raises)."""
        if current() is None and agent.pos is not None:
            warnings.warn(
                f"""Agent {agent.unique_id} is being placed with
place_agent() despite already having the position {agent.pos}. In most
cases, you'd want to clear the current position with remove_agent()
before placing the agent again.""",
                stacklevel=2,
            )
        self._write(agent, self._adjusted(pos, agent), place=True)

    def move_agent(self, agent, pos) -> None:
        """Move ``agent`` to ``pos`` (wrapped on a torus; off a non-torus space raises)."""
        self._write(agent, self._adjusted(pos, agent))

    def remove_agent(self, agent) -> None:
        """Take ``agent`` out of the space ("Agent does not exist in the space" if it is not
        in it; inside a step reported and raised after the step)."""
        ctx = current()
        if ctx is None:
            if not self._placed(agent):
                raise Exception("Agent does not exist in the space")
        else:
            from .space import _traced_handle

            handle = _traced_handle(agent)
            if handle._table.grids.get(_POS) is self:
                off = ctx.read_attr(handle, _ON) < 0
            else:
                off = True  # never placed in this space
            report("cont_remove_unplaced", off, [handle.unique_id])
        self._write(agent, None)

    def _adjusted(self, pos, agent):
        """``torus_adj(pos)``; inside a step Mesa's exception off a non-toroidal space is
        reported with the agent's id."""
        if current() is not None and (_traced(pos) or self.out_of_bounds(pos)):
            return self._traced_adj(pos, agent)
        return self.torus_adj(pos)

    def _traced_adj(self, pos, agent=None):
        p = jnp.asarray(pos, jnp.float32).reshape(2)
        lo = jnp.asarray([self.x_min, self.y_min], jnp.float32)
        size = jnp.asarray(self.size, jnp.float32)
        if self.torus:
            return lo + jnp.mod(p - lo, size)
        out = self.out_of_bounds((p[0], p[1]))
        if agent is None:
            report("cont_oob", out, [pack_f16(p[0], p[1])])
        else:
            from .space import _traced_handle

            report("cont_oob_agent", out, [_traced_handle(agent).unique_id, pack_f16(p[0], p[1])])
        return p

    # -------------------------------------------------------------- queries
    def _deltas(self, a, b, xp):
        d = xp.abs(a - b)
        if self.torus:
            d = xp.minimum(d, xp.asarray(self.size, d.dtype) - d)
        return d

    def get_neighbors(self, pos, radius: float, include_center: bool = True):
        """Agents within ``radius`` of ``pos`` (``include_center=False`` leaves out agents
        exactly at ``pos``)."""
        if current() is not None:
            return self._traced_neighbors(pos, radius, include_center)
        rows = []
        for t in self._tables():
            on = np.asarray(t.cols[_ON])[: t.n]
            alive = np.asarray(t.alive)[: t.n]
            for r in np.flatnonzero((on >= 0) & alive).tolist():
                rows.append((int(on[r]), t, r))
        if not rows:
            return []
        rows.sort(key=lambda x: x[0])
        points = np.array([np.asarray(self._host_pos(t, r), dtype=float) for _, t, r in rows])
        d = self._deltas(points, np.array(pos), np)
        dist2 = d[:, 0] ** 2 + d[:, 1] ** 2
        keep = np.flatnonzero(dist2 <= radius**2)
        return [rows[i][1].handle(rows[i][2]) for i in keep if include_center or dist2[i] > 0]

    def _traced_neighbors(self, pos, radius, include_center):
        p = jnp.asarray(pos, jnp.float32).reshape(2)
        lists = []
        for t in self._tables():
            xy = t.cols[_XY]
            ok = t.alive & (t.cols[_ON] >= 0)
            d = self._deltas(xy, p[None, :], jnp)
            dist2 = d[:, 0] ** 2 + d[:, 1] ** 2
            ok = ok & (dist2 <= jnp.asarray(radius, jnp.float32) ** 2)
            if not include_center:
                ok = ok & (dist2 > 0)
            lists.append(TracedList(jnp.arange(t.cap, dtype=jnp.int32), ok, table=t))
        if not lists:
            raise UnsupportedError("the contents of a space no agent was placed in before the step",
                                   "place the agents in `Model.__init__`")
        return lists[0] if len(lists) == 1 else MultiList(lists)

    def get_heading(self, pos_1, pos_2):
        """The vector from ``pos_1`` to ``pos_2`` (the shorter way round a torus)."""
        if current() is not None and _traced(pos_1, pos_2):
            one = jnp.asarray(pos_1, jnp.float32).reshape(2)
            heading = jnp.asarray(pos_2, jnp.float32).reshape(2) - one
            if self.torus:
                inverse = heading - jnp.sign(heading) * jnp.asarray(self.size, jnp.float32)
                heading = jnp.where(jnp.abs(heading) < jnp.abs(inverse), heading, inverse)
            return heading
        heading = np.array(pos_2) - np.array(pos_1)
        if self.torus:
            inverse = heading - np.sign(heading) * self.size
            heading = tuple(heading[i] if abs(heading[i]) < abs(inverse[i]) else inverse[i]
                            for i in range(2))
        if isinstance(pos_1, np.ndarray):
            return np.asarray(heading)
        return tuple(heading)

    def get_distance(self, pos_1, pos_2) -> float:
        """Euclidean distance (the shorter way round a torus)."""
        if current() is not None and _traced(pos_1, pos_2):
            a = jnp.asarray(pos_1, jnp.float32).reshape(2)
            b = jnp.asarray(pos_2, jnp.float32).reshape(2)
            d = self._deltas(a, b, jnp)
            return jnp.sqrt(jnp.sum(d * d))
        x1, y1 = pos_1
        x2, y2 = pos_2
        dx, dy = abs(x1 - x2), abs(y1 - y2)
        if self.torus:
            dx = min(dx, self.width - dx)
            dy = min(dy, self.height - dy)
        return math.sqrt(dx * dx + dy * dy)

    def torus_adj(self, pos):
        """Wrap ``pos`` into the space; off a non-toroidal space raises Mesa's exception
        (inside a step: reported, and raised after the step)."""
        if current() is not None and (_traced(pos) or self.out_of_bounds(pos)):
            return self._traced_adj(pos)
        if not self.out_of_bounds(pos):
            return pos
        if not self.torus:
            raise Exception("Point out of bounds, and space non-toroidal.")
        x = self.x_min + ((pos[0] - self.x_min) % self.width)
        y = self.y_min + ((pos[1] - self.y_min) % self.height)
        return (x, y) if isinstance(pos, tuple) else np.array((x, y))

    def out_of_bounds(self, pos):
        """Whether ``pos`` is outside the space."""
        x, y = pos
        if _traced(x, y):
            return (x < self.x_min) | (x >= self.x_max) | (y < self.y_min) | (y >= self.y_max)
        return x < self.x_min or x >= self.x_max or y < self.y_min or y >= self.y_max

    @property
    def agents(self):
        """An AgentSet of the agents in the space (placement order)."""
        from .agent import AgentSet

        rows = []
        for t in self._tables():
            on = np.asarray(t.cols[_ON])[: t.n]
            alive = np.asarray(t.alive)[: t.n]
            rows += [(int(on[r]), t, r) for r in np.flatnonzero((on >= 0) & alive).tolist()]
        agents = [t.handle(r) for _, t, r in sorted(rows, key=lambda x: x[0])]
        return AgentSet(agents, random=agents[0].random if agents else None)

    def __repr__(self):
        return f"ContinuousSpace([{self.x_min}, {self.x_max}) x [{self.y_min}, {self.y_max}), torus={self.torus})"
