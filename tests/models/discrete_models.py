"""Small models for tests/test_discrete_space.py (property layers, hex grids, moves)."""

import numpy as np

import mesa_jax as mesa
from mesa_jax.discrete_space import (CellAgent, Grid2DMovingAgent, HexGrid, OrthogonalMooreGrid,
                                     OrthogonalVonNeumannGrid, PropertyLayer)


class Harvester(CellAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.sugar = 0.0
        self.seen = 0.0

    def harvest(self):
        # Sugarscape's eat: take the whole cell (several on one cell: one random winner
        # of the `= 0`, but every one of them read the full amount)
        self.sugar += self.cell.sugar
        self.cell.sugar = 0.0

    def deposit(self):
        self.cell.sugar += 1.0
        self.cell.spice -= 2

    def nibble(self):
        self.cell.sugar -= 1.0
        self.seen = self.cell.sugar  # sees its own write

    def wander_and_eat(self):
        free = [c for c in self.cell.neighborhood.cells if c.is_empty]
        if free:
            best = max(free, key=lambda c: c.sugar)
            self.cell = best
        self.sugar += self.cell.sugar
        self.cell.sugar = 0.0

    def spread(self):
        for c in self.cell.neighborhood.cells:
            c.sugar += 0.125

    def unknown(self):
        self.sugar += self.cell.nectar


class Field(mesa.Model):
    """Harvesters on a small torus with a ``sugar`` (float) and ``spice`` (int) layer."""

    def __init__(self, n=12, side=5, method="harvest", grow=0.0, capacity=None, seed=None,
                 stacked=False):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((side, side), torus=True, capacity=capacity,
                                        random=self.random)
        sugar = np.arange(side * side, dtype=float).reshape(side, side) % 4
        self.grid.add_property_layer(PropertyLayer.from_data("sugar", sugar))
        self.grid.create_property_layer("spice", default_value=10, dtype=int)
        cells = list(self.grid.all_cells)
        if stacked:
            for i in range(n):
                Harvester(self, cells[i % 3])
        else:
            for c in self.random.sample(cells, n):
                Harvester(self, c)
        self.method = method
        self.grow = grow

    def step(self):
        self.agents.shuffle_do(self.method)
        if self.grow:
            self.grid.sugar.modify_cells(np.add, self.grow)


class Seasons(mesa.Model):
    """No agents: model-level layer operations only."""

    def __init__(self, seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalVonNeumannGrid((4, 6), torus=False, random=self.random)
        self.heat = self.grid.create_property_layer("heat", default_value=1.0)
        self.cap = np.full((4, 6), 12.0)
        self.total = 0.0

    def step(self):
        self.heat.data = np.minimum(self.heat.data + 1.0, self.cap)
        self.heat.modify_cells(lambda v: v * 2.0, condition=lambda v: v < 10.0)
        self.heat.set_cells(3.0, condition=lambda v: v > 15.0)
        corner = self.grid[(0, 0)]
        corner.heat += 1.0
        self.grid[(3, 5)].heat = 0.5
        for cell in self.grid.all_cells:
            cell.heat += 0.25
        self.total = self.heat.data.sum()


class Walker(Grid2DMovingAgent):
    def __init__(self, model, cell, direction, distance=1):
        super().__init__(model)
        self.cell = cell
        self.direction = direction
        self.distance = distance

    def go(self):  # distance from an attribute: traced
        self.move(self.model.direction, distance=self.distance)

    def go_fixed(self):  # distance a Python int
        self.move(self.model.direction, self.model.fixed)


class Walk(mesa.Model):
    def __init__(self, direction="north", torus=True, fixed=None, grid=OrthogonalMooreGrid, seed=None):
        super().__init__(seed=seed)
        self.grid = grid((5, 4), torus=torus, random=self.random)
        self.direction = direction
        self.fixed = fixed
        for i, c in enumerate(list(self.grid.all_cells)[::3]):
            Walker(self, c, direction, 1 + i % 3)

    def step(self):
        self.agents.do("go" if self.fixed is None else "go_fixed")


class HexCounter(CellAgent):
    def __init__(self, model, cell, radius):
        super().__init__(model)
        self.cell = cell
        self.radius = radius
        self.near = 0
        self.near_static = 0

    def count(self):
        self.near = len(self.cell.get_neighborhood(radius=self.radius).agents)
        self.near_static = len(self.cell.get_neighborhood(radius=2, include_center=True).agents)


class HexModel(mesa.Model):
    def __init__(self, side=(6, 5), torus=False, n=10, seed=None, radius=1):
        super().__init__(seed=seed)
        self.grid = HexGrid(side, torus=torus, random=self.random)
        for i, c in enumerate(self.random.sample(list(self.grid.all_cells), n)):
            HexCounter(self, c, radius if radius is not None else 1 + i % 3)

    def step(self):
        self.agents.do("count")


class Full(CellAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.radius = 0

    def jump(self):
        self.cell = self.model.grid.select_random_empty_cell()

    def look(self):
        self.radius = len(self.cell.get_neighborhood(radius=self.radius).cells)


class Packed(mesa.Model):
    def __init__(self, method="jump", seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((3, 3), torus=False, capacity=1, random=self.random)
        for c in self.grid.all_cells:
            Full(self, c)
        self.method = method

    def step(self):
        self.agents.do(self.method)
