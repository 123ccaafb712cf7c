"""Cell spaces (Mesa's ``mesa.discrete_space``), compiled."""

from ._cells import Cell, CellAgent, CellCollection, FixedAgent
from ._grid import Grid, OrthogonalMooreGrid, OrthogonalVonNeumannGrid

__all__ = [
    "Cell",
    "CellAgent",
    "CellCollection",
    "FixedAgent",
    "Grid",
    "OrthogonalMooreGrid",
    "OrthogonalVonNeumannGrid",
]
