"""Small continuous-space models for tests/test_continuous_space.py."""

import numpy as np

import mesa_jax as mesa
from mesa_jax.experimental.continuous_space import ContinuousSpace, ContinuousSpaceAgent


class Looker(ContinuousSpaceAgent):
    def __init__(self, model, space, position, radius):
        super().__init__(space, model)
        self.position = position
        self.radius = radius
        self.count = 0
        self.nearby = []
        self.spread = 0.0

    def look(self):
        neighbors, distances = self.get_neighbors_in_radius(radius=self.radius)
        self.count = len(neighbors)
        self.nearby = [n for n in neighbors]
        if neighbors:
            delta = self.space.calculate_difference_vector(self.position, agents=neighbors)
            self.spread = float(np.linalg.norm(delta.sum(axis=0)))

    def drift(self):
        self.position += np.asarray([0.75, -0.5])


class Field(mesa.Model):
    def __init__(self, n=60, size=20.0, radius=3.0, torus=True, clump=False, moving=True, seed=None):
        super().__init__(seed=seed)
        self.moving = moving
        self.space = ContinuousSpace([[0, size], [0, size]], torus=torus, random=self.random)
        pos = self.rng.random((n, 2)) * (2.0 if clump else size)
        for p in pos:
            Looker(self, self.space, p, radius)

    def step(self):
        self.agents.do("look")
        if self.moving:
            self.agents.do("drift")
