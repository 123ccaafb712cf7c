"""``Network``: the nodes of a networkx graph as cells (Mesa's ``discrete_space.Network``)."""

from __future__ import annotations

from .._gridindex import NetworkGeometry
from ._cells import Cell
from ._grid import DiscreteSpace, _check_capacity

__all__ = ["Network"]


class Network(DiscreteSpace):
    """A networked discrete space: cell ``coordinate`` = node id, neighbours = graph edges.

    Inside a compiled step the neighbour lists are padded arrays (one row per node, as wide
    as the largest degree), so a radius-r neighbourhood is one gather.
    """

    def __init__(self, G, capacity=None, random=None, cell_klass=Cell):  # noqa: N803
        """Create the space over graph ``G`` (its nodes, in ``G.nodes`` order)."""
        capacity = _check_capacity(capacity)
        self.G = G
        super().__init__(NetworkGeometry(G, "_mj_cell", capacity=capacity), capacity, random)

    def __repr__(self):
        return f"Network({self.geom.num_cells} nodes)"
