"""Two agent classes in one continuous space, written against Mesa (`import mesa`).

tests/test_continuous_space.py loads this file twice: as it is (real Mesa) and under
mesa_jax's import redirect, and compares what every bird saw.
"""

import numpy as np

import mesa
from mesa.experimental.continuous_space import ContinuousSpace, ContinuousSpaceAgent


class Rock(ContinuousSpaceAgent):
    def __init__(self, model, space, position):
        super().__init__(space, model)
        self.position = position


class Bird(ContinuousSpaceAgent):
    def __init__(self, model, space, position, vision):
        super().__init__(space, model)
        self.position = position
        self.vision = vision
        self.birds = 0
        self.rocks = 0
        self.push = np.zeros(2)
        self.nearest_gap = 0.0
        self.nearest_rock = False
        self.total_distance = 0.0

    def look(self):
        neighbors, distances = self.get_neighbors_in_radius(radius=self.vision)
        self.birds = len([n for n in neighbors if isinstance(n, Bird)])
        self.rocks = len([n for n in neighbors if isinstance(n, Rock)])
        if neighbors:
            delta = self.space.calculate_difference_vector(self.position, agents=neighbors)
            self.push = -delta[distances < self.vision / 2].sum(axis=0)
        near, gaps = self.get_nearest_neighbors(k=2)
        self.nearest_gap = float(gaps.min())
        self.nearest_rock = any(isinstance(n, Rock) for n in near)
        everyone, _ = self.space.calculate_distances(self.position)
        self.total_distance = float(everyone.sum())


class Flock(mesa.Model):
    def __init__(self, n_birds=40, n_rocks=15, size=10.0, vision=2.0, seed=None):
        super().__init__(seed=seed)
        self.space = ContinuousSpace([[0, size], [0, size]], torus=True, random=self.random)
        rng = np.random.default_rng(seed)  # the same positions under both libraries
        for p in rng.random((n_birds, 2)) * size:
            Bird(self, self.space, p, vision)
        for p in rng.random((n_rocks, 2)) * size:
            Rock(self, self.space, p)
        self.centre = 0.0


    def step(self):
        self.agents_by_type[Bird].do("look")
        self.centre = float(self.space.agent_positions.mean())
