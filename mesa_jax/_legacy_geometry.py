"""Geometries of the legacy spaces (``mesa_jax.space``) on top of :class:`GridGeometry`.

* :class:`LegacyGridGeometry`: Mesa's rectangular neighbourhood, where a centre reached by
  wrapping round a small torus is still left out unless ``include_center``.
* :class:`ListGeometry` / :class:`HexGeometry`: neighbourhoods found by a breadth-first
  search over listed neighbours (Mesa's hexagonal rules). Tables keep the ``[cells, M]``,
  ``-1``-padded layout of ``GridGeometry.neighbour_table``; the distance of each entry is
  kept per cell, so a traced radius works too.

(The legacy ``NetworkGrid`` uses ``_gridindex.NetworkGeometry``.)
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ._gridindex import GridGeometry

__all__ = ["LegacyGridGeometry", "HexGeometry", "pad_lists"]


def pad_lists(lists, fill=-1):
    """[len(lists), max len] int32 array of the lists, padded with ``fill``."""
    width = max((len(x) for x in lists), default=0)
    out = np.full((len(lists), max(width, 1)), fill, np.int32)
    for i, row in enumerate(lists):
        if row:
            out[i, : len(row)] = row
    return out


class LegacyGridGeometry(GridGeometry):
    """A rectangular grid with Mesa's legacy neighbourhood rules."""

    def _raw_table(self, radius, moore, include_center):
        tab = super()._raw_table(radius, moore, include_center)
        if not include_center and tab.size:
            own = np.arange(self.num_cells, dtype=np.int32)[:, None]
            tab = np.where(tab == own, -1, tab).astype(np.int32)
        return tab


class ListGeometry(LegacyGridGeometry):
    """Cells whose neighbours are listed (directed adjacency), neighbourhoods found by BFS.

    Subclasses give ``adjacent(i)`` (the cells one step from ``i``, in order) and
    ``ordered(src, dists, include_center)`` (the eager order of a neighbourhood).
    """

    def adjacent(self, i):  # pragma: no cover - abstract
        raise NotImplementedError

    def bfs(self, src, radius):
        """{cell: distance} for every cell within ``radius`` steps of ``src`` (BFS order)."""
        dist = {src: 0}
        frontier = deque([src])
        while frontier:
            i = frontier.popleft()
            d = dist[i]
            if d >= radius:
                continue
            for j in self.adjacent(i):
                if j not in dist:
                    dist[j] = d + 1
                    frontier.append(j)
        return dist

    def ordered(self, src, dists, include_center):
        ids = sorted(i for i, d in dists.items() if d > 0)
        if include_center:
            ids = sorted(ids + [src])
        return ids

    def neighbour_list(self, idx, radius, include_center):
        """The eager neighbourhood of cell ``idx`` as a list of cell ids."""
        return self.ordered(idx, self.bfs(idx, int(radius)), include_center)

    def neighbour_table(self, radius=1, moore=True, include_center=False):
        key = ("list", int(radius), bool(include_center))
        tab = self._nbr_cache.get(key)
        if tab is None:
            tab = self._nbr_cache[key] = pad_lists(
                [self.neighbour_list(i, radius, include_center) for i in range(self.num_cells)])
        return tab

    def ring_table(self, radius, include_center):
        """(ids [cells, M], distance [cells, M]): every cell within ``radius``, nearest first."""
        key = ("rings", int(radius), bool(include_center))
        hit = self._nbr_cache.get(key)
        if hit is None:
            ids, dists = [], []
            for i in range(self.num_cells):
                d = self.bfs(i, int(radius))
                order = sorted((dd, j) for j, dd in d.items() if include_center or j != i)
                ids.append([j for _, j in order])
                dists.append([dd for dd, _ in order])
            hit = self._nbr_cache[key] = (pad_lists(ids), pad_lists(dists, fill=1 << 30))
        return hit

    def neighbour_rings(self, radius, moore=True, include_center=False):
        """(ids [cells, M], distance [cells, M]) for a traced radius (``CellGeometry``)."""
        return self.ring_table(radius, include_center)


class HexGeometry(ListGeometry):
    """Mesa's odd-q hexagonal grid: the six neighbours depend on the parity of x."""

    _EVEN = ((0, -1), (0, 1), (-1, 1), (-1, 0), (1, 1), (1, 0))
    _ODD = ((0, -1), (0, 1), (-1, 0), (-1, -1), (1, 0), (1, -1))

    def adjacent(self, i):
        cache = self._nbr_cache.get("adjacent")
        if cache is None:
            cache = self._nbr_cache["adjacent"] = self._adjacency()
        return cache[i]

    def _adjacency(self):
        w, h = self.width, self.height
        out = []
        for i in range(self.num_cells):
            x, y = divmod(i, h)
            row = []
            for dx, dy in (self._EVEN if x % 2 == 0 else self._ODD):
                nx_, ny = x + dx, y + dy
                if self.torus:
                    nx_, ny = nx_ % w, ny % h
                elif not (0 <= nx_ < w and 0 <= ny < h):
                    continue
                row.append(nx_ * h + ny)
            out.append(row)
        return out
