"""Boids flocking in a continuous torus space, in Mesa style (numpy vectors per agent).

Only the imports differ from a Mesa model.
"""

import numpy as np

import mesa_jax as mesa
from mesa_jax.experimental.continuous_space import ContinuousSpace, ContinuousSpaceAgent


class Boid(ContinuousSpaceAgent):
    def __init__(self, model, space, position, direction, speed=1.0, vision=10.0,
                 separation=2.0, cohere=0.03, separate=0.015, match=0.05):
        super().__init__(space, model)
        self.position = position
        self.direction = direction
        self.speed, self.vision, self.separation = speed, vision, separation
        self.cohere, self.separate, self.match = cohere, separate, match
        self.neighbors = []

    def step(self):
        neighbors, distances = self.get_neighbors_in_radius(radius=self.vision)
        self.neighbors = neighbors
        if neighbors:
            delta = self.space.calculate_difference_vector(self.position, agents=neighbors)
            cohesion = delta.sum(axis=0) * self.cohere
            separation = -delta[distances < self.separation].sum(axis=0) * self.separate
            alignment = np.asarray([n.direction for n in neighbors]).sum(axis=0) * self.match
            self.direction += (cohesion + separation + alignment) / len(neighbors)
            self.direction /= np.linalg.norm(self.direction)
        self.position += self.direction * self.speed


class BoidFlockers(mesa.Model):
    def __init__(self, population_size=100, width=100, height=100, speed=1, vision=10,
                 separation=2, seed=None):
        super().__init__(seed=seed)
        self.space = ContinuousSpace([[0, width], [0, height]], torus=True, random=self.random)
        positions = self.rng.random((population_size, 2)) * self.space.size
        directions = self.rng.uniform(-1, 1, (population_size, 2))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        for p, d in zip(positions, directions):
            Boid(self, self.space, p, d, speed=speed, vision=vision, separation=separation)
        self.datacollector = mesa.DataCollector(model_reporters={
            "polarisation": lambda m: np.linalg.norm(np.mean(np.asarray([a.direction for a in m.agents]), axis=0))})
        self.datacollector.collect(self)

    def step(self):
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)
