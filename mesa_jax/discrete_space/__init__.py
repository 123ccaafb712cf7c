"""Cell spaces (Mesa's ``mesa.discrete_space``), compiled."""

from ._cells import Cell, CellAgent, CellCollection, FixedAgent
from ._grid import DiscreteSpace, Grid, OrthogonalMooreGrid, OrthogonalVonNeumannGrid
from ._network import Network

__all__ = [
    "Cell",
    "CellAgent",
    "CellCollection",
    "DiscreteSpace",
    "FixedAgent",
    "Grid",
    "Network",
    "OrthogonalMooreGrid",
    "OrthogonalVonNeumannGrid",
]
