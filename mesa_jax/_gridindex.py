"""Rectangular grid geometry and the traced cell index (who is in which cell).

The cell index is rebuilt inside a compiled step whenever positions may have changed. It
is a ``[cells, K]`` table of agent rows (``-1`` = empty slot), filled without a sort:
in round ``r`` every not-yet-placed agent bids its row for slot ``r`` of its cell with a
scatter-max, and the winner takes the slot. ``K`` (the capacity) is allocated on the host;
a cell with more than ``K`` agents sets an overflow flag, and the host doubles ``K`` and
replays the step — no agent is ever dropped.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ._collections import prefix_count
from ._random import _randint
from .errors import register_step_error

__all__ = ["CellGeometry", "GridGeometry", "NetworkGeometry", "build_cell_index", "pick_empty"]

_uid = itertools.count()


_SORT_ROWS = 4096  # up to this many rows a crowded index is built by sorting


def build_cell_index(cell, alive, num_cells, k):
    """Group agent rows by cell.

    Arguments:
        cell: int32 [rows], each row's cell (-1: nowhere).
        alive: bool [rows].
        num_cells: number of cells (static).
        k: slots per cell (static capacity).

    Returns:
        (table [num_cells, k] of rows or -1, counts [num_cells], the largest count).
    """
    n = cell.shape[0]
    rows = jnp.arange(n, dtype=jnp.int32)
    placed_ok = alive & (cell >= 0)
    c = jnp.where(placed_ok, cell, num_cells).astype(jnp.int32)
    counts_all = jnp.zeros(num_cells + 1, jnp.int32).at[c].add(1)
    counts = counts_all[:num_cells]
    overflow = jnp.max(counts, initial=0)  # the capacity needed (overflow when > k)
    if n <= _SORT_ROWS and k > 8:
        # few rows, crowded cells (flocks): one stable sort beats k scatter rounds. Rows
        # sorted by cell, highest row first within a cell (the order the rounds give)
        rev = c[::-1]
        order = jnp.argsort(rev, stable=True)
        cs = rev[order]
        start = jnp.cumsum(counts_all) - counts_all
        rank = rows - start[cs]
        table = jnp.full((num_cells + 1, k), -1, jnp.int32).at[cs, rank].set(
            (n - 1 - order).astype(jnp.int32), mode="drop")
        return table[:num_cells], counts, overflow
    table = jnp.full((k, num_cells + 1), -1, jnp.int32)

    def cond(carry):
        r, _, unplaced = carry
        return (r < k) & jnp.any(unplaced)

    def body(carry):
        r, table, unplaced = carry
        target = jnp.where(unplaced, c, num_cells)
        best = jnp.full(num_cells + 1, -1, jnp.int32).at[target].max(jnp.where(unplaced, rows, -1))
        won = unplaced & (best[c] == rows)
        best = best.at[num_cells].set(-1)
        return r + 1, table.at[r].set(best), unplaced & ~won

    _, table, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), table, placed_ok))
    return table[:, :num_cells].T, counts, overflow


def pick_empty(empty):
    """(a uniformly drawn empty cell, how many are empty) for each agent of a traced call.

    The empty cells are listed once (shared by the vmapped agents); each agent draws a
    slot of the list: one gather, where a binary search over the running count took a
    while loop per agent."""
    csum = prefix_count(empty)
    n = csum[-1]
    num = empty.shape[0]
    listed = jnp.zeros(num, jnp.int32).at[jnp.where(empty, csum - 1, num)].set(
        jnp.arange(num, dtype=jnp.int32), mode="drop")
    return listed[_randint(0, jnp.maximum(n, 1))], n


def _distance(offset, moore):
    dx, dy = offset
    return max(abs(dx), abs(dy)) if moore else abs(dx) + abs(dy)


def _drop_repeats(tab):
    """-1 over later repeats of a cell in a row (a radius wrapping round a small torus)."""
    if tab.shape[1] < 2:
        return tab
    order = np.argsort(tab, axis=1, kind="stable")
    srt = np.take_along_axis(tab, order, axis=1)
    rep = np.zeros_like(srt, dtype=bool)
    rep[:, 1:] = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if not rep.any():
        return tab
    out = tab.copy()
    rows = np.nonzero(rep)[0]
    out[rows, order[rep]] = -1
    return out


def default_capacity(name):
    """The first size of a host-allocated capacity: neighbourhood radii 1, slots 8."""
    if name.startswith("sortspan:"):
        return 256
    return 1 if name.startswith("radius:") else 8


class CellGeometry:
    """What every discrete space shares: cell ids ``0..num_cells-1``, neighbour tables
    (``[cells, M]`` numpy arrays, -1 padded), the traced cell index and occupancy counts.

    Subclasses give ``neighbour_table(radius, moore, include_center)`` and
    ``neighbour_rings(radius, moore, include_center)`` (the same table with a distance per
    entry, nearest first), and ``index_of`` / ``coord_of``.
    """

    def __init__(self, num_cells, column, capacity=None, full_message="ERROR: Cell is full"):
        self.num_cells = int(num_cells)
        self.column = column  # name of the agents' position column
        self.capacity = capacity  # agents per cell (None: unlimited)
        self.uid = next(_uid)
        self._nbr_cache: dict = {}
        self.used_tables: set = set()
        self.full_error = register_step_error(
            f"cell_full:{self.uid}",
            lambda p: Exception(f"{full_message} (agent {p[0]} moving to {self.coord_of(p[1])})"))

    def traced_neighbours(self, ctx, idx, valid, radius, moore, include_center):
        """(cell ids [M], mask [M]) around traced cell ``idx``; ``radius`` may be traced.

        A traced radius is answered from a table of host-chosen radius R (first 1); a larger
        radius asks for itself (a ``need:`` signal) and the step is replayed with R that
        large (one replay for Epstein's vision 7, where doubling took three).
        """
        idx = jnp.clip(idx, 0, None)
        if not isinstance(radius, jax.core.Tracer):
            tab = self._device_table(ctx, ("table", int(radius), moore, include_center))
            ids = tab[idx]
            return ids, (ids >= 0) & valid
        name = f"radius:{self.stable_name(ctx.model)}:{int(moore)}{int(include_center)}"
        big = ctx.capacities.get(name, default_capacity(name))
        asked = jnp.ceil(jnp.asarray(radius, jnp.float32)).astype(jnp.int32)
        ctx.signal(f"need:{name}", jnp.where(asked > big, asked, 0))
        tab = self._device_table(ctx, ("rings", big, moore, include_center))
        dist = self._device_table(ctx, ("dist", big, moore, include_center))
        ids = tab[idx]
        if dist.ndim == 2:
            dist = dist[idx]
        return ids, (ids >= 0) & valid & (dist <= radius)

    # Neighbour tables are constants of the compiled program, except where a space says
    # ``tables_as_data`` (networks: another graph of the same size should reuse the
    # program); then the tables a trace used travel in the state (``split`` -> "spaces").
    tables_as_data = False

    def _host_table(self, key):
        kind, radius, moore, include_center = key
        if kind == "table":
            return self.neighbour_table(radius, moore, include_center)
        tab, dist = self.neighbour_rings(radius, moore, include_center)
        return tab if kind == "rings" else dist

    def _device_table(self, ctx, key):
        if not self.tables_as_data:
            return jnp.asarray(self._host_table(key))
        name = self._data_name(key)
        arr = ctx.space_arrays.get(self.uid, {}).get(name)
        if arr is None:
            if not ctx.discovery:
                from .errors import MesaJaxError

                raise MesaJaxError(f"internal: neighbour table {name} missing from the step state")
            self.used_tables.add(key)
            arr = jnp.asarray(self.data_tables()[name])
        return arr

    @staticmethod
    def _data_name(key):
        return "/".join(str(k) for k in key)

    def data_tables(self):
        """{name: numpy table} of the tables traces used, widths padded to a power of two."""
        hit = self._nbr_cache.get(("data", frozenset(self.used_tables)))
        if hit is not None:
            return hit
        out = self._nbr_cache[("data", frozenset(self.used_tables))] = {}
        for key in sorted(self.used_tables, key=str):
            arr = self._host_table(key)
            if arr.ndim == 2:
                width = 1 << max(0, int(arr.shape[1] - 1).bit_length())
                fill = -1 if key[0] != "dist" else np.iinfo(np.int32).max
                pad = np.full((arr.shape[0], width - arr.shape[1]), fill, arr.dtype)
                arr = np.concatenate([arr, pad], axis=1)
            out[self._data_name(key)] = arr
        return out

    # ---------------------------------------------------------- traced index
    def index_flag(self, table):
        """The name of this grid's cell-index capacity for ``table`` (and its overflow flag)."""
        return f"cell_index:{type(self).__name__}:{self.column}:{table.cls.__name__}"

    def stable_name(self, model):
        """This space's name in capacity keys: the same in every model built the same way
        (so that models of another seed share the compiled program)."""
        classes = "+".join(sorted(t.cls.__name__ for t in self.tables(model)))
        return f"{type(self).__name__}:{self.column}:{classes}"

    def traced_index(self, ctx, table):
        """(slots [cells, K], counts) for one agent table, built once per phase of a step."""
        key = (self.uid, id(table))
        hit = ctx.indexes.get(key)
        if hit is None:
            name = self.index_flag(table)
            first = default_capacity(name)
            if self.capacity is not None:  # claims keep cells within capacity
                first = max(1, min(first, int(self.capacity)))
            k = ctx.capacities.get(name, first)
            col = table.cols[self.column]
            slots, counts, needed = build_cell_index(col, table.alive, self.num_cells, k)
            ctx.need(name, needed, k)
            hit = ctx.indexes[key] = (slots, counts)
        return hit

    def traced_counts(self, ctx):
        """int32 [cells]: agents (of every table on this grid) per cell, now."""
        key = ("counts", self.uid)
        hit = ctx.indexes.get(key)
        if hit is None:
            total = jnp.zeros(self.num_cells + 1, jnp.int32)
            for t in self.tables(ctx.model):
                col = t.cols[self.column]
                c = jnp.where(t.alive & (col >= 0), col, self.num_cells)
                total = total.at[c].add(1)
            hit = ctx.indexes[key] = total[: self.num_cells]
        return hit

    def tables(self, model):
        return [t for t in model._mj_tables.values()
                if getattr(t, "spaces", None) and self in t.spaces.values() and self.column in t.cols]

    # ----------------------------------------------------------- host index
    def host_occupancy(self, model):
        """{cell id: [(table, row), ...]} built from the columns (eager queries)."""
        version = model.__dict__.get("_mj_version", 0)
        cached = getattr(self, "_occ", None)
        if cached is not None and cached[0] == version and cached[1] is model:
            return cached[2]
        occ: dict = {}
        for t in self.tables(model):
            col = np.asarray(t.cols[self.column])[: t.n]
            alive = np.asarray(t.alive)[: t.n]
            rows = np.flatnonzero(alive & (col >= 0))
            for r, c in zip(rows.tolist(), col[rows].tolist()):
                occ.setdefault(c, []).append((t, r))
        self._occ = (version, model, occ)
        return occ

    def host_move(self, model, table, row, old, new):
        """Keep a built host occupancy in step with an eager move."""
        cached = getattr(self, "_occ", None)
        if cached is None or cached[1] is not model or cached[0] != model.__dict__.get("_mj_version", 0):
            return
        occ = cached[2]
        if old is not None and old >= 0:
            lst = occ.get(old)
            if lst is not None:
                try:
                    lst.remove((table, row))
                except ValueError:
                    pass
        if new is not None and new >= 0:
            occ.setdefault(new, []).append((table, row))

class GridGeometry(CellGeometry):
    """A width x height grid: coordinates <-> cell ids and neighbour tables.

    Cell id of ``(x, y)`` is ``x * height + y`` (Mesa's coordinate order).
    """

    def __init__(self, width, height, torus, column, capacity=None, full_message="ERROR: Cell is full"):
        self.width, self.height, self.torus = int(width), int(height), bool(torus)
        super().__init__(self.width * self.height, column, capacity, full_message)

    def signature(self):
        """What a compiled program bakes in about this space (it keys the program cache)."""
        return (self.width, self.height, self.torus, self.capacity)

    # ------------------------------------------------------------ coordinates
    def index_of(self, pos):
        x, y = pos
        return int(x) * self.height + int(y)

    def coord_of(self, idx):
        idx = int(idx)
        return (idx // self.height, idx % self.height)

    def out_of_bounds(self, pos):
        x, y = pos
        return x < 0 or x >= self.width or y < 0 or y >= self.height

    # -------------------------------------------------------------- neighbours
    def offsets(self, radius, moore, include_center):
        out = []
        for dx in range(-radius, radius + 1):
            for dy in range(-radius, radius + 1):
                if not moore and abs(dx) + abs(dy) > radius:
                    continue
                if dx == 0 and dy == 0 and not include_center:
                    continue
                out.append((dx, dy))
        return out

    def neighbour_table(self, radius=1, moore=True, include_center=False):
        """numpy [cells, M] of neighbour cell ids, -1 where a non-torus edge cuts it off."""
        key = (radius, moore, include_center)
        tab = self._nbr_cache.get(key)
        if tab is None:
            tab = _drop_repeats(self._raw_table(radius, moore, include_center))
            self._nbr_cache[key] = tab
        return tab

    def neighbour_rings(self, radius, moore, include_center):
        """(table [cells, M], distance [M]): the radius-``radius`` table, offsets nearest first."""
        key = ("rings", radius, moore, include_center)
        hit = self._nbr_cache.get(key)
        if hit is None:
            offs = sorted(self.offsets(radius, moore, include_center),
                          key=lambda o: _distance(o, moore))
            dist = np.asarray([_distance(o, moore) for o in offs], np.int32)
            by_offset = {o: i for i, o in enumerate(self.offsets(radius, moore, include_center))}
            # reorder, then cut repeats again so that a repeated cell keeps its nearest ring
            raw = self._raw_table(radius, moore, include_center)[:, [by_offset[o] for o in offs]]
            hit = self._nbr_cache[key] = (_drop_repeats(raw), dist)
        return hit

    def _raw_table(self, radius, moore, include_center):
        offs = np.asarray(self.offsets(radius, moore, include_center), np.int64).reshape(-1, 2)
        ids = np.arange(self.num_cells)
        x, y = ids // self.height, ids % self.height
        nx = x[:, None] + offs[None, :, 0]
        ny = y[:, None] + offs[None, :, 1]
        if self.torus:
            return ((nx % self.width) * self.height + ny % self.height).astype(np.int32)
        ok = (nx >= 0) & (nx < self.width) & (ny >= 0) & (ny < self.height)
        return np.where(ok, nx * self.height + ny, -1).astype(np.int32)



class NetworkGeometry(CellGeometry):
    """The nodes of a graph as cells (node order = ``graph.nodes`` order)."""

    def __init__(self, graph, column, capacity=None, full_message="ERROR: Cell is full"):
        self.graph = graph
        self.nodes = list(graph.nodes)
        self._index = {n: i for i, n in enumerate(self.nodes)}
        super().__init__(len(self.nodes), column, capacity, full_message)

    def signature(self):
        # the tables travel as data: only their shapes are part of the program
        return (self.num_cells, self.capacity,
                tuple(sorted((k, v.shape) for k, v in self.data_tables().items())))

    def index_of(self, node):
        return self._index[node]

    def coord_of(self, idx):
        return self.nodes[int(idx)]

    def out_of_bounds(self, node):
        return node not in self._index

    tables_as_data = True

    def neighbour_rings(self, radius, moore=True, include_center=False):
        """(table [cells, M], distance [cells, M]): breadth-first, nearest first."""
        key = ("rings", radius, include_center)
        hit = self._nbr_cache.get(key)
        if hit is None:
            rows, dists = [], []
            for i, node in enumerate(self.nodes):
                seen = {node: 0}
                frontier = [node]
                order = [(i, 0)] if include_center else []
                for d in range(1, radius + 1):
                    nxt = []
                    for u in frontier:
                        for v in self.graph.neighbors(u):
                            if v not in seen:
                                seen[v] = d
                                nxt.append(v)
                                order.append((self._index[v], d))
                    frontier = nxt
                rows.append([j for j, _ in order])
                dists.append([d for _, d in order])
            m = max(1, max(len(r) for r in rows))
            tab = np.full((self.num_cells, m), -1, np.int32)
            dist = np.full((self.num_cells, m), radius + 1, np.int32)
            for i, (r, d) in enumerate(zip(rows, dists)):
                tab[i, : len(r)] = r
                dist[i, : len(d)] = d
            hit = self._nbr_cache[key] = (tab, dist)
        return hit

    def neighbour_table(self, radius=1, moore=True, include_center=False):
        return self.neighbour_rings(radius, moore, include_center)[0]
