"""Small models for the traced-space tests (tests/test_spaces_traced.py)."""

import enum

import networkx as nx

import mesa_jax as mesa
from mesa_jax.discrete_space import CellAgent, Network, OrthogonalMooreGrid, FixedAgent


class Mover(CellAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell

    def jump(self):
        self.cell = self.model.grid.select_random_empty_cell()

    def step_to_neighbour(self):
        free = [c for c in self.cell.neighborhood.cells if c.is_empty]
        if free:
            self.cell = self.random.choice(free)

    def step_anywhere_near(self):
        # Mesa raises IndexError when the neighbourhood has no empty cell
        self.cell = self.random.choice([c for c in self.cell.neighborhood.cells if c.is_empty])

    def into_occupied(self):
        # every agent targets the cell of agent 1: always full
        self.cell = self.model.target.cell


class Crowd(mesa.Model):
    """``n`` agents on a ``side`` x ``side`` torus with capacity 1."""

    def __init__(self, n=40, side=7, method="jump", seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((side, side), torus=True, capacity=1, random=self.random)
        cells = self.random.sample(list(self.grid.all_cells), n)
        for c in cells:
            Mover(self, c)
        self.target = self.agents.to_list()[0] if hasattr(self.agents, "to_list") else list(self.agents)[0]
        self.method = method

    def step(self):
        self.agents.shuffle_do(self.method)


class Counter(CellAgent):
    def __init__(self, model, cell, radius):
        super().__init__(model)
        self.cell = cell
        self.radius = radius
        self.seen = 0

    def look(self):
        self.seen = len(self.cell.get_neighborhood(radius=self.radius).agents)


class Radii(mesa.Model):
    def __init__(self, radius=2, seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((9, 9), torus=False, random=self.random)
        for c in self.random.sample(list(self.grid.all_cells), 30):
            Counter(self, c, radius)

    def step(self):
        self.agents.do("look")


class Mood(enum.Enum):
    CALM = "calm"
    ANGRY = "angry"


class Node(FixedAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.mood = Mood.CALM
        self.last = None

    def spread(self):
        if self.mood is Mood.ANGRY:
            for other in self.cell.neighborhood.agents:
                other.mood = Mood.ANGRY
        self.last = 1 if self.mood == Mood.ANGRY else 0


def share(model):
    angry = sum(1 for a in model.agents if a.mood is Mood.ANGRY)
    try:
        return angry / (len(model.agents) - angry)
    except ZeroDivisionError:
        return -1.0


class Gossip(mesa.Model):
    def __init__(self, seed=None):
        super().__init__(seed=seed)
        self.grid = Network(nx.path_graph(6), random=self.random)
        for c in self.grid.all_cells:
            Node(self, c)
        list(self.agents)[0].mood = Mood.ANGRY
        self.datacollector = mesa.DataCollector(
            model_reporters={"share": share, "angry": lambda m: sum(a.last for a in m.agents)})

    def step(self):
        self.agents.do("spread")
        self.datacollector.collect(self)
