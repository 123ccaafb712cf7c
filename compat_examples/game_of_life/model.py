"""Conway's Game of Life in Mesa style (cells are FixedAgents on a torus grid).

Only the imports differ from a Mesa model: ``import mesa_jax as mesa``.
"""

import mesa_jax as mesa
from mesa_jax.discrete_space import FixedAgent, OrthogonalMooreGrid

DEAD, ALIVE = 0, 1


class LifeCell(FixedAgent):
    """One cell; decides its next state from its eight neighbours, then takes it."""

    def __init__(self, model, cell, state=DEAD):
        super().__init__(model)
        self.cell = cell
        self.state = state
        self.next_state = None  # typed by the first step that writes it

    def decide(self):
        alive_around = sum(n.state for n in self.cell.neighborhood.agents)
        self.next_state = self.state
        if self.state == ALIVE and (alive_around < 2 or alive_around > 3):
            self.next_state = DEAD
        elif self.state == DEAD and alive_around == 3:
            self.next_state = ALIVE

    def commit(self):
        self.state = self.next_state


class GameOfLife(mesa.Model):
    """A ``width`` x ``height`` torus, each cell alive with probability ``fraction_alive``."""

    def __init__(self, width=50, height=50, fraction_alive=0.2, seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((width, height), capacity=1, torus=True, random=self.random)
        for cell in self.grid.all_cells:
            LifeCell(self, cell, ALIVE if self.random.random() < fraction_alive else DEAD)
        self.datacollector = mesa.DataCollector(
            model_reporters={"alive": lambda m: sum(c.state for c in m.agents)})
        self.datacollector.collect(self)

    def step(self):
        self.agents.do("decide")
        self.agents.do("commit")
        self.datacollector.collect(self)
