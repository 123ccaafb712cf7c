"""Agents whose steps use constructs mesa_jax refuses (tests/test_errors.py)."""

import mesa_jax as mesa


class TryAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.x = 1

    def step(self):
        try:
            self.x += 1
        except ValueError:
            pass


class AppendAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.x = 1
        self.log = []

    def step(self):
        seen = []
        if self.x > 0:
            seen.append(self.x)


class RecursiveAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.x = 3

    def countdown(self, k):
        if k <= 0:
            return 0
        return 1 + self.countdown(k - 1)

    def step(self):
        self.x = self.countdown(self.x)


class NewAttrAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.x = 1

    def step(self):
        self.brand_new = 5


class TextWorkAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.label = "a"

    def step(self):
        self.label = self.label + "!"


class TextIntoNumberAgent(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.x = 1

    def step(self):
        self.x = "many"


class BadModel(mesa.Model):
    def __init__(self, agent_cls, n=5, seed=1):
        super().__init__(seed=seed)
        agent_cls.create_agents(self, n)

    def step(self):
        self.agents.do("step")
