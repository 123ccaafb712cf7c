"""Virus spreading on an Erdos-Renyi network, in Mesa style (Enum states, a Network space).

Only the imports differ from a Mesa model.
"""

import math
from enum import Enum

import networkx as nx

import mesa_jax as mesa
from mesa_jax.discrete_space import CellCollection, FixedAgent, Network


class State(Enum):
    SUSCEPTIBLE = 0
    INFECTED = 1
    RESISTANT = 2


class Host(FixedAgent):
    def __init__(self, model, cell, spread, check, recover, resist):
        super().__init__(model)
        self.cell = cell
        self.state = State.SUSCEPTIBLE
        self.spread, self.check, self.recover, self.resist = spread, check, recover, resist

    def step(self):
        if self.state is State.INFECTED:
            for other in self.cell.neighborhood.agents:
                if other.state is State.SUSCEPTIBLE and self.random.random() < self.spread:
                    other.state = State.INFECTED
        if self.state is State.INFECTED and self.random.random() < self.check:
            if self.random.random() < self.recover:
                self.state = State.SUSCEPTIBLE
                if self.random.random() < self.resist:
                    self.state = State.RESISTANT


def count(model, state):
    return sum(1 for a in model.agents if a.state is state)


class VirusOnNetwork(mesa.Model):
    def __init__(self, num_nodes=10, avg_node_degree=3, initial_outbreak_size=1,
                 virus_spread_chance=0.4, virus_check_frequency=0.4, recovery_chance=0.3,
                 gain_resistance_chance=0.5, seed=None):
        super().__init__(seed=seed)
        graph = nx.erdos_renyi_graph(n=num_nodes, p=avg_node_degree / num_nodes, seed=seed)
        self.grid = Network(graph, capacity=1, random=self.random)
        for cell in self.grid.all_cells:
            Host(self, cell, virus_spread_chance, virus_check_frequency, recovery_chance,
                 gain_resistance_chance)
        outbreak = CellCollection(
            self.random.sample(list(self.grid.all_cells), min(initial_outbreak_size, num_nodes)),
            random=self.random)
        for a in outbreak.agents:
            a.state = State.INFECTED
        self.datacollector = mesa.DataCollector({
            "Infected": lambda m: count(m, State.INFECTED),
            "Susceptible": lambda m: count(m, State.SUSCEPTIBLE),
            "Resistant": lambda m: count(m, State.RESISTANT),
            "R over S": self.resistant_susceptible_ratio,
        })
        self.datacollector.collect(self)

    def resistant_susceptible_ratio(self):
        try:
            return count(self, State.RESISTANT) / count(self, State.SUSCEPTIBLE)
        except ZeroDivisionError:
            return math.inf

    def step(self):
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)
