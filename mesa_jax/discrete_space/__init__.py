"""Cell spaces (Mesa's ``mesa.discrete_space``), compiled."""

from ._cells import Cell, CellAgent, CellCollection, FixedAgent, Grid2DMovingAgent
from ._grid import (DiscreteSpace, Grid, HexGrid, OrthogonalMooreGrid,
                    OrthogonalVonNeumannGrid)
from ._layers import PropertyLayer
from ._network import Network

__all__ = [
    "Cell",
    "CellAgent",
    "CellCollection",
    "DiscreteSpace",
    "FixedAgent",
    "Grid",
    "Grid2DMovingAgent",
    "HexGrid",
    "Network",
    "OrthogonalMooreGrid",
    "OrthogonalVonNeumannGrid",
    "PropertyLayer",
]
