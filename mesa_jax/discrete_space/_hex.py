"""Geometry of ``discrete_space.HexGrid``: Mesa's hexagonal connections, as tables.

A cell ``(x, y)`` connects to six cells whose offsets depend on the parity of ``y``
(Mesa's ``HexGrid._connect_cells_2d``). A radius-``r`` neighbourhood is Mesa's recursion
over the connections (the cells reachable in at most ``r`` steps, the centre only when
``include_center``), kept in Mesa's order. The tables have the ``[cells, M]``, ``-1``
padded layout of ``GridGeometry.neighbour_table``; the ring table carries each entry's
distance (per cell), so a traced radius works as on the other grids.
"""

from __future__ import annotations

import numpy as np

from .._gridindex import GridGeometry

__all__ = ["HexGeometry", "step_table"]

# offsets (dx, dy) by the parity of y, in Mesa's connection order
Y_EVEN = ((0, -1), (1, -1), (-1, 0), (1, 0), (0, 1), (1, 1))
Y_ODD = ((-1, -1), (0, -1), (-1, 0), (1, 0), (-1, 1), (0, 1))


def _pad(lists, fill=-1):
    width = max(1, max((len(x) for x in lists), default=0))
    out = np.full((len(lists), width), fill, np.int32)
    for i, row in enumerate(lists):
        out[i, : len(row)] = row
    return out


def step_table(geom, offset, parities=(True, True)):
    """int32 [cells]: the cell one ``offset`` away from each cell (-1: none).

    ``parities``: whether the offset is a connection of cells with even / odd ``y``
    (Mesa's connections are keyed by offset; on a small torus two offsets may reach one
    cell, and both keys exist).
    """
    dx, dy = offset
    ids = np.arange(geom.num_cells)
    x, y = ids // geom.height, ids % geom.height
    nx, ny = x + dx, y + dy
    if geom.torus:
        nx, ny = nx % geom.width, ny % geom.height
    ok = (nx >= 0) & (nx < geom.width) & (ny >= 0) & (ny < geom.height)
    ok &= np.asarray(parities, bool)[y % 2]
    return np.where(ok, nx * geom.height + ny, -1).astype(np.int32)


class HexGeometry(GridGeometry):
    """A width x height hexagonal grid (cell id ``x * height + y``)."""

    def offsets_for(self, y):
        return Y_ODD if y % 2 else Y_EVEN

    def adjacency(self):
        """[cells, 6]: the connections in Mesa's order (-1 off a non-torus edge)."""
        hit = self._nbr_cache.get("adjacency")
        if hit is None:
            even = np.stack([step_table(self, o) for o in Y_EVEN], 1)
            odd = np.stack([step_table(self, o) for o in Y_ODD], 1)
            y = np.arange(self.num_cells) % self.height
            hit = self._nbr_cache["adjacency"] = np.where((y % 2 == 1)[:, None], odd, even)
        return hit

    def _connected(self, i):
        seen = {}
        for j in self.adjacency()[i].tolist():
            if j >= 0:
                seen.setdefault(j, None)
        return list(seen)

    def _with_center(self, radius):
        """Per cell, Mesa's ``_neighborhood(radius, include_center=True)`` in its order."""
        key = ("with_center", radius)
        hit = self._nbr_cache.get(key)
        if hit is not None:
            return hit
        if radius == 1:
            out = []
            for i in range(self.num_cells):
                d = dict.fromkeys(self._connected(i))
                d[i] = None
                out.append(list(d))
        else:
            inner = self._with_center(radius - 1)
            out = []
            for i in range(self.num_cells):
                d = {}
                for j in self._connected(i):
                    d.update(dict.fromkeys(inner[j]))
                out.append(list(d))
        self._nbr_cache[key] = out
        return out

    def neighbour_lists(self, radius, include_center):
        radius = int(radius)
        if radius < 1:
            raise ValueError("radius must be larger than one")
        if radius == 1 and not include_center:
            return [self._connected(i) for i in range(self.num_cells)]
        lists = self._with_center(radius)
        if include_center:
            return lists
        return [[j for j in row if j != i] for i, row in enumerate(lists)]

    def neighbour_table(self, radius=1, moore=True, include_center=False):
        key = ("hex", int(radius), bool(include_center))
        tab = self._nbr_cache.get(key)
        if tab is None:
            tab = self._nbr_cache[key] = _pad(self.neighbour_lists(radius, include_center))
        return tab

    def _distances(self, i, radius):
        dist = {i: 0}
        frontier = [i]
        for d in range(1, radius + 1):
            nxt = []
            for u in frontier:
                for v in self._connected(u):
                    if v not in dist:
                        dist[v] = d
                        nxt.append(v)
            frontier = nxt
        return dist

    def neighbour_rings(self, radius, moore=True, include_center=False):
        """(ids [cells, M], distance [cells, M]): the radius-``radius`` lists, nearest first."""
        key = ("hex_rings", int(radius), bool(include_center))
        hit = self._nbr_cache.get(key)
        if hit is None:
            ids, dists = [], []
            for i, row in enumerate(self.neighbour_lists(radius, include_center)):
                dist = self._distances(i, radius)
                pairs = sorted(((dist.get(j, 1) if j != i else 0), k, j) for k, j in enumerate(row))
                ids.append([j for _, _, j in pairs])
                dists.append([d for d, _, _ in pairs])
            hit = self._nbr_cache[key] = (_pad(ids), _pad(dists, fill=1 << 30))
        return hit
