"""Mesa's legacy ``mesa.space``: grids, hexagonal grids, networks, continuous space.

Agent positions live in agent-table columns: on grids and networks ``_mj_pos`` holds the
cell id (``x * height + y``; a network's node index in ``G.nodes`` order), ``-1`` for
"not placed". Eagerly ``agent.pos`` is Mesa's value (an ``(x, y)`` tuple, a node id);
inside a compiled step it is a :class:`TracedPos` / :class:`TracedNode` that indexes,
unpacks and compares like one. ``ContinuousSpace`` keeps float positions (see
``_legacy_continuous.py``).

Eager calls follow Mesa 3.3's semantics, order and messages (random draws included, so an
eager model given the same seed places agents as Mesa does). Inside a compiled step:

* moves on a ``SingleGrid`` are claims (``_claims.py``): two agents never share a cell;
* ``move_to_empty`` picks uniformly among the cells empty when the agent call started;
* Mesa's exceptions that depend on traced values (a move off a non-toroidal grid, a full
  grid in ``move_to_empty``, a node not in the graph, ...) are reported and raised on the
  host after the step, with Mesa's type and message; the model keeps its state from
  before the step (``_legacy_errors.py``).
"""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._collections import MultiList, TracedList, TracedLocation
from ._context import current
from ._legacy_continuous import ContinuousSpace
from ._gridindex import NetworkGeometry, pick_empty
from ._legacy_geometry import HexGeometry, LegacyGridGeometry
from ._legacy_layers import (PropertyLayer, is_single_argument_function,
                             ufunc_requires_additional_input)
from ._legacy_errors import pack_xy, report
from .errors import UnsupportedError

__all__ = [
    "ContinuousSpace",
    "HexMultiGrid",
    "HexSingleGrid",
    "MultiGrid",
    "NetworkGrid",
    "PropertyLayer",
    "SingleGrid",
    "TracedNode",
    "TracedPos",
    "accept_tuple_argument",
    "is_integer",
    "is_single_argument_function",
    "ufunc_requires_additional_input",
    "warn_if_agent_has_position_already",
]

_COLUMN = "_mj_pos"
_types_integer = (int, np.integer)


def is_integer(x) -> bool:
    """Whether ``x`` is a Python or numpy integer."""
    return isinstance(x, _types_integer)


def _is_traced(x):
    return isinstance(x, jax.core.Tracer)


def _has_tracer(value):
    if isinstance(value, (tuple, list)):
        return any(_has_tracer(v) for v in value)
    return _is_traced(value)


def _is_single_position(positions):
    """Mesa's ``accept_tuple_argument`` test: one ``(x, y)`` rather than a list of them."""
    if isinstance(positions, TracedLocation):
        return True
    if isinstance(positions, (TracedList, MultiList)):
        return False
    return len(positions) == 2 and not isinstance(positions[0], (tuple, TracedLocation))


def accept_tuple_argument(wrapped_function):
    """Decorator: a method taking a list of positions also takes one ``(x, y)``."""

    def wrapper(grid_instance, positions):
        if _is_single_position(positions):
            positions = [positions]
        return wrapped_function(grid_instance, positions)

    return wrapper


def _placed_warning(agent):
    warnings.warn(
        f"""Agent {agent.unique_id} is being placed with
place_agent() despite already having the position {agent.pos}. In most
cases, you'd want to clear the current position with remove_agent()
before placing the agent again.""",
        stacklevel=3,
    )


def warn_if_agent_has_position_already(placement_func):
    """Decorator: warn (as Mesa does) when an agent that has a position is placed again."""

    def wrapper(self, agent, *args, **kwargs):
        if current() is None and agent.pos is not None:
            _placed_warning(agent)
        placement_func(self, agent, *args, **kwargs)

    return wrapper


def _traced_handle(agent):
    """A handle ``TraceContext`` can write through (agents kept from the build phase, e.g. a
    model attribute, lack the ``_valid`` flag that traced handles carry)."""
    if "_valid" in agent.__dict__:
        return agent
    from ._collections import make_agent_handle

    return make_agent_handle(agent._table, agent._row, True)


def _agentset(agents):
    from .agent import AgentSet

    agents = list(agents)
    return AgentSet(agents, random=agents[0].random if agents else None)


# ---------------------------------------------------------------- traced places
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
        return self._grid._as_traced(other)

    def _wrapper(self):
        return self._grid._wrap_pos


class TracedNode(TracedLocation):
    """A network node inside a compiled step (compares with node ids and other nodes).

    On a graph whose nodes are ``0..n-1`` it is also the node id as a number (it can be
    stored in an agent attribute, compared with numbers, used in arithmetic).
    """

    def __jax_array__(self):
        self._grid._require_integer_nodes("using a traced node as a number")
        return jnp.where(self._mj_valid, self._mj_idx, -1)

    def __int__(self):
        raise UnsupportedError("`int()` of a traced node", "use the node as it is")

    def _number(self):
        return jnp.asarray(self.__jax_array__())

    def __add__(self, other):
        return self._number() + other

    def __radd__(self, other):
        return other + self._number()

    def __sub__(self, other):
        return self._number() - other

    def __rsub__(self, other):
        return other - self._number()

    def __mul__(self, other):
        return self._number() * other

    def __rmul__(self, other):
        return other * self._number()

    def __floordiv__(self, other):
        return self._number() // other

    def __mod__(self, other):
        return self._number() % other

    def _coerce(self, other):
        return self._grid._as_traced(other)

    def _wrapper(self):
        return self._grid._wrap_pos


# ------------------------------------------------------------------- shared base
class _Positions:
    """Agents placed on the cells of a ``GridGeometry`` through the ``_mj_pos`` column."""

    _single = False
    _traced_cls = TracedPos

    # ------------------------------------------------------------- binding
    def _bind(self, table):
        bound = table.grids.get(_COLUMN)
        if bound is None:
            if current() is not None:
                raise UnsupportedError(
                    f"placing a `{table.cls.__name__}` in a space for the first time inside a step",
                    "place every agent of this class in `Model.__init__` (or before the first step)")
            table.grids[_COLUMN] = self
            table.spaces[_COLUMN] = self.geom
            if _COLUMN not in table.cols:
                table.set(0, _COLUMN, np.int32(-1))
                table.cols[_COLUMN][:] = -1
        elif bound is not self:
            raise UnsupportedError(f"`{table.cls.__name__}` agents in two different spaces",
                                   "use one legacy space per agent class")
        if self._model is None:
            self._model = table.model

    def _wrap_pos(self, idx, ok):
        return self._traced_cls(self, idx, (idx >= 0) & ok)

    def _public(self, idx):
        """Mesa's position value for a cell id."""
        return self.geom.coord_of(idx)

    # ------------------------------------------------------------ positions
    def _cell_of(self, agent):
        """Eager: the agent's cell id (-1: not placed in this space)."""
        t = agent._table
        if t.grids.get(_COLUMN) is not self or _COLUMN not in t.cols:
            return -1
        return int(np.asarray(t.cols[_COLUMN])[agent._row])

    def _pos_of(self, agent):
        ctx = current()
        if ctx is not None:
            idx = ctx.read_attr(agent, _COLUMN)
            return self._traced_cls(self, idx, idx >= 0)
        idx = self._cell_of(agent)
        return None if idx < 0 else self._public(idx)

    def _set_pos(self, agent, pos):
        """``agent.pos = pos`` (also what ``agent.pos = ...`` does): move it there."""
        if current() is not None:
            self._traced_write(agent, None if pos is None else self._as_traced(pos))
            return
        self._write(agent, -1 if pos is None else self._checked_id(pos))

    def _write(self, agent, new):
        """Eager: put ``agent`` in cell ``new`` (-1: off the space); keeps the host index."""
        t = agent._table
        self._bind(t)
        model = t.model
        self.geom.host_occupancy(model)  # built before the move, so cells keep Mesa's order
        old = int(np.asarray(t.cols[_COLUMN])[agent._row])
        t.set(agent._row, _COLUMN, np.int32(new))
        self.geom.host_move(model, t, agent._row, old, new)

    def _traced_write(self, agent, tpos):
        """In a step: move to traced position ``tpos`` (None: off the space); an invalid
        position leaves the agent where it is."""
        ctx = current()
        agent = _traced_handle(agent)
        t = agent._table
        if t.grids.get(_COLUMN) is not self:
            self._bind(t)
        if tpos is None:
            ctx.write_attr(agent, _COLUMN, jnp.int32(-1))
            return
        old = ctx.read_attr(agent, _COLUMN)
        ctx.write_attr(agent, _COLUMN, jnp.where(tpos._mj_valid, tpos._mj_idx, old).astype(jnp.int32))

    # ------------------------------------------------------------- contents
    def _occupancy(self):
        if current() is not None:
            raise UnsupportedError(
                f"iterating or indexing a `{type(self).__name__}` cell by cell inside a step",
                "ask for what you need: `get_cell_list_contents(...)`, `get_neighbors(...)`, "
                "`is_cell_empty(...)`, `empties`")
        if self._model is None:
            return {}
        return self.geom.host_occupancy(self._model)

    def _cell_agents(self, cid):
        """Eager: the agents in cell ``cid``, in the order they arrived."""
        return [t.handle(r) for t, r in self._occupancy().get(cid, ())]

    def _traced_agents(self, ids, ok):
        """In a step: the agents in cells ``ids`` (where ``ok``), a padded list per class."""
        ctx = current()
        ids = jnp.atleast_1d(ids)
        ok = jnp.atleast_1d(ok)
        lists = []
        for t in self.geom.tables(ctx.model):
            slots, _ = self.geom.traced_index(ctx, t)
            rows = slots[jnp.clip(ids, 0, None)]
            lists.append(TracedList(rows.reshape(-1), ((rows >= 0) & ok[:, None]).reshape(-1), table=t))
        if not lists:
            raise UnsupportedError("the contents of a space no agent was placed in before the step",
                                   "place the agents in `Model.__init__`")
        return lists[0] if len(lists) == 1 else MultiList(lists)

    def _traced_ids(self, positions, mode="plain"):
        """(ids, ok) for a traced list, one place, or a Python list of places (each read
        with Mesa's checks for ``mode``, see ``_traced_at``)."""
        if isinstance(positions, TracedList):
            return positions.values, positions.mask
        if isinstance(positions, (TracedLocation,)):
            return positions._mj_idx[None], positions._mj_valid[None]
        ps = [self._traced_at(p, mode) for p in positions]
        if not ps:
            return jnp.zeros(0, jnp.int32), jnp.zeros(0, bool)
        return jnp.stack([p._mj_idx for p in ps]), jnp.stack([p._mj_valid for p in ps])

    def _traced_counts(self):
        return self.geom.traced_counts(current())


# -------------------------------------------------------------------- grids
class _Grid(_Positions):
    """Shared implementation of the rectangular legacy grids (with property layers)."""

    _geometry = LegacyGridGeometry
    _nbr_mode = "neighborhood"  # how ``get_neighborhood`` checks its position

    def __init__(self, width: int, height: int, torus: bool, property_layers=None) -> None:
        """Create a ``width x height`` grid (``torus``: edges wrap).

        Arguments:
            width, height: the grid's size.
            torus: whether the edges wrap around.
            property_layers: a PropertyLayer or a list of them to add.
        """
        self.width, self.height, self.torus = int(width), int(height), bool(torus)
        self.num_cells = self.width * self.height
        self.geom = self._geometry(self.width, self.height, self.torus, _COLUMN,
                                   capacity=1 if self._single else None,
                                   full_message="Cell not empty")
        self._model = None
        self.cutoff_empties = 7.953 * self.num_cells ** 0.384
        self.properties: dict = {}
        if property_layers:
            if isinstance(property_layers, PropertyLayer):
                property_layers = [property_layers]
            for layer in property_layers:
                self.add_property_layer(layer)

    @staticmethod
    def default_val():
        return None

    def _content(self, cid):
        agents = self._cell_agents(cid)
        if self._single:
            return agents[0] if agents else None
        return agents

    # ---------------------------------------------------------- coordinates
    def _checked_id(self, pos):
        """The cell id of ``pos`` read as Mesa's ``_grid[x][y]`` does: a negative index counts
        from the end, a too-large one raises ``IndexError``."""
        x, y = pos
        for v, n in ((x, self.width), (y, self.height)):
            if not is_integer(v):
                raise TypeError(f"list indices must be integers or slices, not {type(v).__name__}")
            if not -n <= v < n:
                raise IndexError("list index out of range")
        return (int(x) % self.width) * self.height + int(y) % self.height

    def _as_traced(self, pos):
        """A TracedPos for a position (wrapped on a torus; invalid when off the grid)."""
        if isinstance(pos, TracedPos):
            return pos
        if pos is None:
            return TracedPos(self, -1, False)
        x, y = pos
        x, y = jnp.asarray(x, jnp.int32), jnp.asarray(y, jnp.int32)
        if self.torus:
            x, y = x % self.width, y % self.height
        ok = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        return TracedPos(self, jnp.where(ok, x * self.height + y, -1), ok)

    def _traced_at(self, pos, mode, agent=None, when=True):
        """A TracedPos for ``pos`` inside a step, checked as Mesa checks it in ``mode``; what
        Mesa raises is reported where ``when`` holds (``agent``: the agent moved, named in
        the report).

        * ``"index"``: Mesa's ``_grid[x][y]`` (``place_agent``, ``is_cell_empty``, cell
          contents): ``-n <= v < n``, negatives counting from the end, else IndexError;
          a float coordinate is a TypeError.
        * ``"move"``: ``torus_adj`` then ``_grid[x][y]`` (``move_agent``).
        * ``"torus"``: ``torus_adj`` (``grid[x, y]``, ``torus_adj``).
        * ``"neighborhood"``: off the grid raises, torus or not (``get_neighborhood``).
        * ``"hex"``: wrapped on a torus, else off the grid: no cell (Mesa raises nothing).
        * ``"plain"``: no check (wrapped on a torus, else invalid off the grid).
        """
        if isinstance(pos, TracedLocation):
            return pos
        if pos is None:
            return TracedPos(self, -1, False)
        x, y = pos
        x, y = jnp.asarray(x), jnp.asarray(y)
        is_float = any(jnp.issubdtype(v.dtype, jnp.floating) for v in (x, y))
        x, y = x.astype(jnp.int32), y.astype(jnp.int32)
        w, h = self.width, self.height
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        wrapped = jnp.asarray(self.torus)
        uid = None if agent is None else _traced_handle(agent).unique_id

        def send(name, cond):
            cond = cond & when
            if uid is None:
                report(name, cond, [pack_xy(x, y)])
            else:
                report(name + "_agent", cond, [uid, pack_xy(x, y)])

        if mode == "index":
            ok = (x >= -w) & (x < w) & (y >= -h) & (y < h)
            send("index", ~ok)
        elif mode in ("move", "torus"):
            ok = inside | wrapped
            send("oob", ~ok)
        elif mode == "neighborhood":
            ok = inside
            report("pos_oob", ~ok & when, [pack_xy(x, y)])
        else:  # "hex", "plain"
            ok = inside | wrapped
        if is_float and mode in ("index", "move"):
            send("float_index", ok)
        x, y = x % w, y % h
        return TracedPos(self, jnp.where(ok, x * h + y, -1), ok)

    def torus_adj(self, pos):
        """Wrap a position onto a torus; off a non-toroidal grid raises Mesa's exception."""
        if isinstance(pos, TracedLocation):
            return pos
        if _has_tracer(pos):
            return self._traced_at(pos, "torus")
        if not self.out_of_bounds(pos):
            return pos
        if not self.torus:
            if current() is not None:  # reported: this call may run in a branch not taken
                return self._traced_at(pos, "torus")
            raise Exception("Point out of bounds, and space non-toroidal.")
        return pos[0] % self.width, pos[1] % self.height

    def out_of_bounds(self, pos):
        """Whether ``pos`` is off the grid."""
        if isinstance(pos, TracedLocation):
            return jnp.logical_not(pos._mj_valid)
        x, y = pos
        if _is_traced(x) or _is_traced(y):
            return (x < 0) | (x >= self.width) | (y < 0) | (y >= self.height)
        return x < 0 or x >= self.width or y < 0 or y >= self.height

    # -------------------------------------------------------------- placing
    def place_agent(self, agent, pos) -> None:
        """Place ``agent`` at ``pos`` (SingleGrid: raises "Cell not empty" on an occupied cell)."""
        if current() is not None:
            self._traced_write(agent, self._traced_at(pos, "index", agent))
            return
        if agent.pos is not None:
            _placed_warning(agent)
        cid = self._checked_id(pos)
        here = self._cell_agents(cid)
        if self._single:
            if here:
                raise Exception("Cell not empty")
        elif any(a is agent for a in here):
            return
        self._write(agent, cid)

    def remove_agent(self, agent) -> None:
        """Take ``agent`` off the grid (its ``pos`` becomes None)."""
        if current() is not None:
            self._traced_remove_check(agent)
            self._traced_write(agent, None)
            return
        if self._cell_of(agent) < 0:
            if self._single:
                return
            raise TypeError("cannot unpack non-iterable NoneType object")
        self._write(agent, -1)

    def move_agent(self, agent, pos) -> None:
        """Move ``agent`` to ``pos`` (wrapped on a torus; off a non-torus grid raises)."""
        if current() is not None:
            target = self._traced_at(pos, "move", agent)
            self._traced_remove_check(agent, target._mj_valid)
            self._traced_write(agent, target)
            return
        pos = self.torus_adj(pos)
        self.remove_agent(agent)
        self.place_agent(agent, pos)

    def _traced_remove_check(self, agent, when=True):
        """Mesa's MultiGrid ``remove_agent`` of an agent that is not on the grid: TypeError
        (a SingleGrid ignores it)."""
        if self._single:
            return
        agent = _traced_handle(agent)
        off = current().read_attr(agent, _COLUMN) < 0
        report("remove_unplaced", off & when, [agent.unique_id])

    def swap_pos(self, agent_a, agent_b) -> None:
        """Exchange the positions of two agents."""
        if current() is not None:
            self._traced_swap(agent_a, agent_b)
            return
        missing = [a for a in (agent_a, agent_b) if a.pos is None]
        if missing:
            raise Exception(", ".join(f"<Agent id: {a.unique_id}>" for a in missing) + " - not on the grid")
        pos_a, pos_b = agent_a.pos, agent_b.pos
        if pos_a == pos_b:
            return
        self.remove_agent(agent_a)
        self.remove_agent(agent_b)
        self.place_agent(agent_a, pos_b)
        self.place_agent(agent_b, pos_a)

    def _traced_swap(self, a, b):
        ctx = current()
        if self._single and ctx.frame.agent is not None:
            raise UnsupportedError(
                "`swap_pos` on a SingleGrid inside an agent's step",
                "swap in `Model.step` (e.g. pick the two agents there), or use a MultiGrid")
        a, b = _traced_handle(a), _traced_handle(b)
        pa, pb = ctx.read_attr(a, _COLUMN), ctx.read_attr(b, _COLUMN)
        ok = (pa >= 0) & (pb >= 0)
        ids = [a.unique_id, b.unique_id]
        report("swap_a", (pa < 0) & (pb >= 0), ids)
        report("swap_b", (pa >= 0) & (pb < 0), ids)
        report("swap_ab", (pa < 0) & (pb < 0), ids)
        ctx.write_attr(a, _COLUMN, jnp.where(ok, pb, pa))
        ctx.write_attr(b, _COLUMN, jnp.where(ok, pa, pb))

    def move_to_empty(self, agent) -> None:
        """Move ``agent`` to a random empty cell (uniform over the empty cells)."""
        if current() is not None:
            self._traced_move_to_empty(agent)
            return
        occ = self._occupancy()
        n_empty = self.num_cells - sum(1 for v in occ.values() if v)
        if n_empty == 0:
            raise Exception("ERROR: No empty cells")
        if n_empty > self.cutoff_empties:  # Mesa's two ways of drawing (same draws)
            while True:
                new_pos = (agent.random.randrange(self.width), agent.random.randrange(self.height))
                if self.is_cell_empty(new_pos):
                    break
        else:
            new_pos = agent.random.choice(sorted(self.empties))
        self.remove_agent(agent)
        self.place_agent(agent, new_pos)

    def _traced_move_to_empty(self, agent):
        idx, n = pick_empty(self._traced_counts() == 0)
        report("no_empty", n == 0, [_traced_handle(agent).unique_id])
        self._traced_remove_check(agent, n > 0)
        self._traced_write(agent, TracedPos(self, idx, n > 0))

    def move_agent_to_one_of(self, agent, pos, selection: str = "random",
                             handle_empty: str | None = None) -> None:
        """Move ``agent`` to one of ``pos`` ("random", or "closest" with random ties)."""
        if current() is not None:
            self._traced_move_to_one_of(agent, pos, selection, handle_empty)
            return
        if pos:
            if selection == "random":
                chosen = agent.random.choice(pos)
            elif selection == "closest":
                here = agent.pos
                best, best_d = [], float("inf")
                agent.random.shuffle(pos)
                for p in pos:
                    d = self._distance_squared(p, here)
                    if d < best_d:
                        best, best_d = [p], d
                    elif d == best_d:
                        best.append(p)
                chosen = agent.random.choice(best)
            else:
                raise ValueError(f"Invalid selection method {selection}. Choose 'random' or 'closest'.")
            self.move_agent(agent, chosen)
        elif handle_empty == "warning":
            warnings.warn(f"No positions given, could not move agent {agent.unique_id}.",
                          RuntimeWarning, stacklevel=2)
        elif handle_empty == "error":
            raise ValueError(f"No positions given, could not move agent {agent.unique_id}.")

    def _traced_move_to_one_of(self, agent, pos, selection, handle_empty):
        """Mesa's choice among the positions given (off-grid ones included: choosing one
        off a non-toroidal grid is ``move_agent``'s exception); none given: nothing, or
        ``handle_empty="error"``'s ValueError ("warning" warns nothing inside a step)."""
        from ._random import _randint

        if selection not in ("random", "closest"):
            raise ValueError(f"Invalid selection method {selection}. Choose 'random' or 'closest'.")
        h = self.height
        if isinstance(pos, TracedLocation):
            pos = [pos]
        if isinstance(pos, TracedList):
            xs, ys, present = pos.values // h, pos.values % h, pos.mask
        else:
            pos = list(pos)
            if not pos:
                if handle_empty == "error":
                    report("no_positions", True, [_traced_handle(agent).unique_id])
                return
            xs = jnp.stack([jnp.asarray(p[0]) for p in pos])
            ys = jnp.stack([jnp.asarray(p[1]) for p in pos])
            present = jnp.ones(len(pos), bool)
        n = jnp.sum(present.astype(jnp.int32))
        if handle_empty == "error":
            report("no_positions", n == 0, [_traced_handle(agent).unique_id])
        ok = present
        if selection == "closest":  # Mesa's _distance_squared, on the raw coordinates
            hx, hy = self._pos_of(agent)._xy()
            dx, dy = jnp.abs(xs - hx), jnp.abs(ys - hy)
            if self.torus:
                dx = jnp.minimum(dx, self.width - dx)
                dy = jnp.minimum(dy, self.height - dy)
            d = dx * dx + dy * dy
            big = jnp.inf if jnp.issubdtype(d.dtype, jnp.floating) else jnp.iinfo(d.dtype).max
            d = jnp.where(present, d, big)
            ok = present & (d == jnp.min(d))
        choices = TracedList(jnp.arange(ok.shape[0], dtype=jnp.int32), ok)
        j = choices.nth_valid(_randint(0, jnp.maximum(choices.count(), 1)))
        some = n > 0
        target = self._traced_at((xs[j], ys[j]), "move", agent, when=some)
        self._traced_remove_check(agent, target._mj_valid & some)
        self._traced_write(agent, TracedPos(self, target._mj_idx, target._mj_valid & some))

    def _distance_squared(self, pos1, pos2):
        dx, dy = abs(pos1[0] - pos2[0]), abs(pos1[1] - pos2[1])
        if self.torus:
            dx = min(dx, self.width - dx)
            dy = min(dy, self.height - dy)
        return dx**2 + dy**2

    # -------------------------------------------------------------- queries
    def _neighbour_ids(self, pos, moore, include_center, radius):
        """Eager: cell ids of a neighbourhood in Mesa's order."""
        if self.out_of_bounds(pos):
            raise Exception("The `pos` tuple passed is out of bounds.")
        row = self.geom.neighbour_table(int(radius), moore, include_center)[self._checked_id(pos)]
        return [i for i in row.tolist() if i >= 0]

    def _traced_neighbourhood(self, pos, moore, include_center, radius):
        p = self._traced_at(pos, self._nbr_mode)
        ids, ok = self.geom.traced_neighbours(current(), p._mj_idx, p._mj_valid, radius, moore,
                                              include_center)
        return TracedList(ids, ok, wrap=self._wrap_pos)

    def get_neighborhood(self, pos, moore: bool, include_center: bool = False, radius: int = 1):
        """Positions around ``pos`` (a tuple of ``(x, y)``; traced: a padded list)."""
        if current() is not None:
            return self._traced_neighbourhood(pos, moore, include_center, radius)
        return tuple(self.geom.coord_of(i) for i in self._neighbour_ids(pos, moore, include_center, radius))

    def iter_neighborhood(self, pos, moore: bool, include_center: bool = False, radius: int = 1):
        """Iterator over ``get_neighborhood``."""
        out = self.get_neighborhood(pos, moore, include_center, radius)
        return out if current() is not None else iter(out)

    def get_neighbors(self, pos, moore: bool, include_center: bool = False, radius: int = 1):
        """Agents in the neighbourhood of ``pos``."""
        if current() is not None:
            nb = self._traced_neighbourhood(pos, moore, include_center, radius)
            return self._traced_agents(nb.values, nb.mask)
        ids = self._neighbour_ids(pos, moore, include_center, radius)
        return [a for i in ids for a in self._cell_agents(i)]

    def iter_neighbors(self, pos, moore: bool, include_center: bool = False, radius: int = 1):
        """Iterator over ``get_neighbors``."""
        out = self.get_neighbors(pos, moore, include_center, radius)
        return out if current() is not None else iter(out)

    def get_cell_list_contents(self, cell_list):
        """Agents in the given positions (one ``(x, y)`` or a list of them)."""
        if _is_single_position(cell_list):
            cell_list = [cell_list]
        if current() is not None:
            return self._traced_agents(*self._traced_ids(cell_list, "index"))
        return [a for p in cell_list for a in self._cell_agents(self._checked_id(p))]

    def iter_cell_list_contents(self, cell_list):
        """Iterator over ``get_cell_list_contents``."""
        out = self.get_cell_list_contents(cell_list)
        return out if current() is not None else iter(out)

    def is_cell_empty(self, pos) -> bool:
        """Whether no agent is at ``pos``."""
        if current() is not None:  # off the grid: Mesa's IndexError, reported
            p = self._traced_at(pos, "index")
            return p._mj_valid & (self._traced_counts()[jnp.clip(p._mj_idx, 0, None)] == 0)
        return not self._cell_agents(self._checked_id(pos))

    @property
    def empties(self):
        """The set of empty ``(x, y)`` (traced: a padded list of positions)."""
        if current() is not None:
            ids = jnp.arange(self.num_cells, dtype=jnp.int32)
            return TracedList(ids, self._traced_counts() == 0, wrap=self._wrap_pos)
        occ = self._occupancy()
        return {self.geom.coord_of(i) for i in range(self.num_cells) if not occ.get(i)}

    def build_empties(self) -> None:
        """Kept for compatibility: ``empties`` is always computed from the positions."""

    def exists_empty_cells(self) -> bool:
        """Whether any cell is empty."""
        if current() is not None:
            return jnp.any(self._traced_counts() == 0)
        occ = self._occupancy()
        return sum(1 for v in occ.values() if v) < self.num_cells

    @property
    def empty_mask(self) -> np.ndarray:
        """Boolean ``[width, height]`` array, True where a cell holds no agent."""
        if current() is not None:
            return (self._traced_counts() == 0).reshape(self.width, self.height)
        mask = np.ones(self.num_cells, bool)
        for cid, lst in self._occupancy().items():
            if lst:
                mask[cid] = False
        return mask.reshape(self.width, self.height)

    # ------------------------------------------------------------ iteration
    def coord_iter(self):
        """``(content, (x, y))`` for every cell (content: an agent or None on a SingleGrid,
        a list of agents on a MultiGrid)."""
        for x, y in itertools.product(range(self.width), range(self.height)):
            yield self._content(x * self.height + y), (x, y)

    def __iter__(self):
        return (self._content(i) for i in range(self.num_cells))

    def __getitem__(self, index):
        """``grid[x]``, ``grid[x, y]``, ``grid[[(x, y), ...]]``, slices (Mesa's forms).

        Inside a step ``grid[x, y]`` / ``grid[pos]`` only: the agent there or None
        (SingleGrid), the padded list of agents there (MultiGrid)."""
        if current() is not None and (isinstance(index, TracedLocation) or (
                isinstance(index, tuple) and len(index) == 2 and not isinstance(index[0], (tuple, slice))
                and not isinstance(index[1], slice))):
            agents = self._traced_agents(*self._traced_ids(self._as_traced(self.torus_adj(index))))
            if not self._single:
                return agents
            if isinstance(agents, MultiList):
                raise UnsupportedError("`grid[x, y]` on a SingleGrid holding agents of several classes",
                                       "use `grid.get_cell_list_contents((x, y))`")
            return agents[0]
        if isinstance(index, int):
            return [self._content(index * self.height + y) for y in range(self.height)]
        if isinstance(index[0], tuple):
            return [self._content(self._checked_id(self.torus_adj(p))) for p in index]
        x, y = index
        xs_int, ys_int = is_integer(x), is_integer(y)
        if xs_int and ys_int:
            x, y = self.torus_adj((x, y))
            return self._content(x * self.height + y)
        if xs_int:
            x, _ = self.torus_adj((x, 0))
            return [self._content(x * self.height + yy) for yy in range(self.height)[y]]
        if ys_int:
            _, y = self.torus_adj((0, y))
            return [self._content(xx * self.height + y) for xx in range(self.width)[x]]
        return [self._content(xx * self.height + yy)
                for xx in range(self.width)[x] for yy in range(self.height)[y]]

    @property
    def agents(self):
        """An AgentSet of the agents on the grid (in cell order)."""
        return _agentset(a for i in range(self.num_cells) for a in self._cell_agents(i))

    # ------------------------------------------------------ property layers
    def add_property_layer(self, property_layer: PropertyLayer) -> None:
        """Add a layer (its name must be new and its size the grid's)."""
        if property_layer.name in self.properties:
            raise ValueError(f"Property layer {property_layer.name} already exists.")
        if property_layer.width != self.width or property_layer.height != self.height:
            raise ValueError(
                f"Property layer dimensions {property_layer.width}x{property_layer.height} do not "
                f"match grid dimensions {self.width}x{self.height}.")
        self.properties[property_layer.name] = property_layer

    def remove_property_layer(self, property_name: str) -> None:
        """Remove the layer called ``property_name``."""
        if property_name not in self.properties:
            raise ValueError(f"Property layer {property_name} does not exist.")
        del self.properties[property_name]

    def get_neighborhood_mask(self, pos, moore: bool, include_center: bool, radius: int) -> np.ndarray:
        """Boolean ``[width, height]`` array, True on the neighbourhood of ``pos``."""
        mask = np.zeros(self.num_cells, bool)
        mask[self._neighbour_ids(pos, moore, include_center, radius)] = True
        return mask.reshape(self.width, self.height)

    def select_cells(self, conditions: dict | None = None, extreme_values: dict | None = None,
                     masks=None, only_empty: bool = False, return_list: bool = True):
        """Cells meeting layer ``conditions``, ``extreme_values`` ("highest"/"lowest"),
        ``masks`` and ``only_empty``: a list of ``(x, y)`` or the boolean array."""
        keep = np.ones((self.width, self.height), bool)
        if masks is not None:
            for m in (masks if isinstance(masks, list) else [masks]):
                keep &= np.asarray(m, bool)
        if only_empty:
            keep &= self.empty_mask
        for name, cond in (conditions or {}).items():
            keep &= np.asarray(cond(self.properties[name].data), bool)
        for name, mode in (extreme_values or {}).items():
            data = self.properties[name].data
            masked_data = np.ma.masked_array(data, mask=~keep)
            if mode == "highest":
                target = masked_data.max()
            elif mode == "lowest":
                target = masked_data.min()
            else:
                raise ValueError(f"Invalid mode {mode}. Choose from 'highest' or 'lowest'.")
            keep &= data == target
        if return_list:
            return list(zip(*np.where(keep)))
        return keep

    def __repr__(self):
        return f"{type(self).__name__}({self.width}, {self.height}, torus={self.torus})"


class MultiGrid(_Grid):
    """A grid where each cell may hold any number of agents (Mesa's ``MultiGrid``)."""

    @staticmethod
    def default_val():
        return []


class SingleGrid(_Grid):
    """A grid where each cell holds at most one agent (Mesa's ``SingleGrid``).

    Eagerly, placing or moving onto an occupied cell raises ``Exception("Cell not empty")``.
    Inside a compiled step a move is a claim: of several agents aiming at one free cell one
    wins, the others run again (``_claims.py``); never two agents share a cell.
    """

    _single = True


class _HexGrid:
    """Mesa's hexagonal neighbourhoods (odd-q: the neighbours depend on the parity of x)."""

    _geometry = HexGeometry
    _nbr_mode = "hex"

    def torus_adj_2d(self, pos):
        return pos[0] % self.width, pos[1] % self.height

    def _hex_ids(self, pos, include_center, radius):
        if self.out_of_bounds(pos):
            if not self.torus:
                raise Exception("The `pos` tuple passed is out of bounds.")
            pos = self.torus_adj_2d(pos)
        row = self.geom.neighbour_table(int(radius), True, include_center)[self._checked_id(pos)]
        return [i for i in row.tolist() if i >= 0]

    def get_neighborhood(self, pos, include_center: bool = False, radius: int = 1):
        """Positions around ``pos``, sorted (a tuple; traced: a padded list)."""
        if current() is not None:
            return self._traced_neighbourhood(pos, True, include_center, radius)
        return tuple(self.geom.coord_of(i) for i in self._hex_ids(pos, include_center, radius))

    def iter_neighborhood(self, pos, include_center: bool = False, radius: int = 1):
        out = self.get_neighborhood(pos, include_center, radius)
        return out if current() is not None else iter(out)

    def get_neighbors(self, pos, include_center: bool = False, radius: int = 1):
        """Agents in the hexagonal neighbourhood of ``pos``."""
        if current() is not None:
            nb = self._traced_neighbourhood(pos, True, include_center, radius)
            return self._traced_agents(nb.values, nb.mask)
        return [a for i in self._hex_ids(pos, include_center, radius) for a in self._cell_agents(i)]

    def iter_neighbors(self, pos, include_center: bool = False, radius: int = 1):
        out = self.get_neighbors(pos, include_center, radius)
        return out if current() is not None else iter(out)

    def get_neighborhood_mask(self, pos, moore, include_center, radius):
        mask = np.zeros(self.num_cells, bool)
        mask[self._hex_ids(pos, include_center, radius)] = True
        return mask.reshape(self.width, self.height)


class HexSingleGrid(_HexGrid, SingleGrid):
    """A SingleGrid with hexagonal neighbourhoods."""


class HexMultiGrid(_HexGrid, MultiGrid):
    """A MultiGrid with hexagonal neighbourhoods."""


# ------------------------------------------------------------------ network
class NetworkGrid(_Positions):
    """Agents on the nodes of a networkx graph (any number per node)."""

    _traced_cls = TracedNode

    def __init__(self, g) -> None:
        """Use graph ``g`` (its nodes are the places; ``pos`` is a node id)."""
        self.G = g
        self.geom = NetworkGeometry(g, _COLUMN)
        self._model = None

    @staticmethod
    def default_val() -> list:
        return []

    def _checked_id(self, node_id):
        return self.geom.index_of(node_id)  # KeyError for a node not in the graph, as Mesa

    def _as_traced(self, node):
        if isinstance(node, TracedNode):
            return node
        if node is None:
            return TracedNode(self, -1, False)
        if _is_traced(node):
            n = self.geom.num_cells
            self._require_integer_nodes("a node id computed inside a step")
            node = jnp.asarray(node, jnp.int32)
            ok = (node >= 0) & (node < n)
            return TracedNode(self, jnp.where(ok, node, -1), ok)
        return TracedNode(self, self.geom.index_of(node), True)

    def _traced_at(self, node, mode, agent=None, when=True):
        """A TracedNode for ``node`` inside a step. A node not in the graph is Mesa's
        ``G.nodes[node]`` KeyError, reported where ``when`` holds (``mode="index"``), or
        nothing (``mode="plain"``: an invalid node)."""
        if isinstance(node, TracedNode) or node is None:
            return self._as_traced(node)
        if not _is_traced(node) and not self.geom.out_of_bounds(node):
            return self._as_traced(node)
        if not _is_traced(node) and not is_integer(node):
            return self._as_traced(node)  # KeyError now (no int to report it with)
        self._require_integer_nodes("a node id computed inside a step")
        n = self.geom.num_cells
        node = jnp.asarray(node, jnp.int32)
        ok = (node >= 0) & (node < n)
        if mode == "index":
            report("node_missing", ~ok & when, [node])
        return TracedNode(self, jnp.where(ok, node, -1), ok)

    def _traced_remove_check(self, agent, when=True):
        """Mesa's ``remove_agent`` of an agent on no node: ``G.nodes[None]``, KeyError."""
        agent = _traced_handle(agent)
        off = current().read_attr(agent, _COLUMN) < 0
        report("node_remove_unplaced", off & when, [agent.unique_id])

    def _require_integer_nodes(self, what):
        if self.geom.nodes != list(range(self.geom.num_cells)):
            raise UnsupportedError(
                f"{what} on a graph whose nodes are not 0..n-1",
                "use the nodes `get_neighborhood` returns, or relabel the graph "
                "(`nx.convert_node_labels_to_integers`)")

    def place_agent(self, agent, node_id) -> None:
        """Place ``agent`` on node ``node_id``."""
        if current() is not None:
            self._traced_write(agent, self._traced_at(node_id, "index", agent))
            return
        if agent.pos is not None:
            _placed_warning(agent)
        self._write(agent, self._checked_id(node_id))

    def get_neighborhood(self, node_id, include_center: bool = False, radius: int = 1):
        """Nodes within ``radius`` steps of ``node_id`` (Mesa's order; traced: a padded list)."""
        if current() is not None:
            p = self._traced_at(node_id, "plain")
            if not isinstance(node_id, TracedNode):  # a number: Mesa's error for a missing node
                bad, payload = ~p._mj_valid, [jnp.asarray(node_id, jnp.int32)]
                one = radius == 1  # G.neighbors / single_source_shortest_path_length
                report("node_not_in_graph", bad & one, payload)
                report("source_not_in_graph", bad & ~jnp.asarray(one), payload)
            ids, ok = self.geom.traced_neighbours(current(), p._mj_idx, p._mj_valid, radius, True,
                                                  include_center)
            return TracedList(ids, ok, wrap=self._wrap_pos)
        import networkx as nx

        if radius == 1:
            out = list(self.G.neighbors(node_id))
            if include_center:
                out.append(node_id)
            return out
        dist = nx.single_source_shortest_path_length(self.G, node_id, radius)
        if not include_center:
            del dist[node_id]
        return [n for n, _ in sorted(dist.items(), key=lambda kv: kv[1])]

    def get_neighbors(self, node_id, include_center: bool = False, radius: int = 1):
        """Agents on the nodes around ``node_id``."""
        return self.get_cell_list_contents(self.get_neighborhood(node_id, include_center, radius))

    def move_agent(self, agent, node_id) -> None:
        """Move ``agent`` to node ``node_id``."""
        if current() is not None:
            self._traced_remove_check(agent)
            self._traced_write(agent, self._traced_at(node_id, "index", agent))
            return
        self.remove_agent(agent)
        self.place_agent(agent, node_id)

    def remove_agent(self, agent) -> None:
        """Take ``agent`` off the network (its ``pos`` becomes None)."""
        if current() is not None:
            self._traced_remove_check(agent)
            self._traced_write(agent, None)
            return
        if self._cell_of(agent) < 0:
            raise KeyError(None)
        self._write(agent, -1)

    def is_cell_empty(self, node_id) -> bool:
        """Whether no agent is on ``node_id``."""
        if current() is not None:
            p = self._traced_at(node_id, "index")
            return self._traced_counts()[jnp.clip(p._mj_idx, 0, None)] == 0
        return not self._cell_agents(self._checked_id(node_id))

    def get_cell_list_contents(self, cell_list):
        """Agents on the given nodes (a list of node ids)."""
        if current() is not None:
            return self._traced_agents(*self._traced_ids(cell_list, "index"))
        return [a for n in cell_list for a in self._cell_agents(self._checked_id(n))]

    def iter_cell_list_contents(self, cell_list):
        out = self.get_cell_list_contents(cell_list)
        return out if current() is not None else iter(out)

    def get_all_cell_contents(self):
        """Every agent on the network (node order)."""
        return self.get_cell_list_contents(list(self.G))

    @property
    def agents(self):
        return _agentset(self.get_all_cell_contents())

    def __repr__(self):
        return f"NetworkGrid({self.geom.num_cells} nodes)"
