"""Schelling segregation in Mesa style: unhappy agents move to a random empty cell.

Only the imports differ from a Mesa model. On mesa_jax the moves of one step happen at
once; two agents choosing the same empty cell is a claim that one wins (the other tries
again against the updated grid), see docs/porting.md.
"""

import mesa_jax as mesa
from mesa_jax.discrete_space import CellAgent, OrthogonalMooreGrid


class Resident(CellAgent):
    def __init__(self, model, cell, group, homophily, radius):
        super().__init__(model)
        self.cell = cell
        self.group = group
        self.homophily = homophily
        self.radius = radius
        self.happy = False

    def assess(self):
        around = list(self.cell.get_neighborhood(radius=self.radius).agents)
        same = len([n for n in around if n.group == self.group])
        share = same / len(around) if len(around) > 0 else 0.0
        self.happy = share >= self.homophily
        if self.happy:
            self.model.happy += 1

    def move(self):
        if not self.happy:
            self.cell = self.model.grid.select_random_empty_cell()


class Schelling(mesa.Model):
    def __init__(self, width=20, height=20, density=0.8, minority_pc=0.5, homophily=0.4,
                 radius=1, seed=None):
        super().__init__(seed=seed)
        self.grid = OrthogonalMooreGrid((width, height), capacity=1, random=self.random)
        self.happy = 0
        for cell in self.grid.all_cells:
            if self.random.random() < density:
                group = 1 if self.random.random() < minority_pc else 0
                Resident(self, cell, group, homophily, radius)
        self.datacollector = mesa.DataCollector(
            model_reporters={"happy": "happy",
                             "pct_happy": lambda m: 100 * m.happy / len(m.agents)},
            agent_reporters={"group": "group"})
        self.agents.do("assess")
        self.datacollector.collect(self)

    def step(self):
        self.happy = 0
        self.agents.shuffle_do("move")
        self.agents.do("assess")
        self.datacollector.collect(self)
        self.running = self.happy < len(self.agents)
