"""One agent method per Python construct the converter supports (tests/test_converter.py).

Each method reads the agent's own attributes and its cellmates' read-only attributes and
writes only its own result attributes, so sequential (eager) and parallel (compiled)
activation must agree exactly.
"""

import mesa_jax as mesa
from mesa_jax.discrete_space import CellAgent, OrthogonalMooreGrid


class Other(CellAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.a = 7
        self.r = 0


class Walker(CellAgent):
    def __init__(self, model, cell, a, b):
        super().__init__(model)
        self.cell = cell
        self.a = a
        self.b = b
        self.r = 0
        self.f = 0.0
        self.flag = False

    def helper_double(self, x):
        return 2 * x

    def c_if_elif(self):
        if self.a > 6:
            self.r = 3
        elif self.a > 3:
            self.r = 2
        else:
            self.r = 1

    def c_early_return(self):
        if self.a % 2 == 0:
            self.r = 10
            return
        self.r = 20

    def c_return_value(self):
        self.r = self._classify()

    def _classify(self):
        if self.a < 3:
            return 100
        if self.a < 6:
            return 200
        return 300

    def c_ifexp(self):
        self.r = 5 if self.b > 0.5 else -5

    def c_boolops(self):
        self.flag = (self.a > 2 and self.b < 0.5) or not (self.a < 8)

    def c_while(self):
        n = 0
        x = self.a
        while x > 0:
            x = x - 3
            n = n + 1
        self.r = n

    def c_for(self):
        total = 0
        for other in self.cell.agents:
            if other is not self:
                total = total + other.a
        self.r = total

    def c_listcomp(self):
        vals = [o.a for o in self.cell.agents if o.a > 2]
        self.r = sum(vals) + len(vals)

    def c_genexp(self):
        self.r = sum(o.a * 2 for o in self.cell.agents if o is not self)

    def c_is(self):
        mates = [o for o in self.cell.agents if o is not self]
        self.r = len(mates)

    def c_isinstance(self):
        self.r = len([o for o in self.cell.agents if isinstance(o, Walker)])

    def c_truthiness(self):
        mates = [o for o in self.cell.agents if o is not self and o.a > 4]
        if mates:
            self.r = 1
        else:
            self.r = -1

    def c_min_max(self):
        vals = [o.a for o in self.cell.agents]
        self.r = max(vals) * 100 + min(vals)

    def c_sorted_enumerate(self):
        vals = sorted(o.a for o in self.cell.agents)
        self.r = sum(i * v for i, v in enumerate(vals))

    def c_any_all(self):
        big = any(o.a > 8 for o in self.cell.agents)
        pos = all(o.a >= 0 for o in self.cell.agents)
        self.r = int(big) * 10 + int(pos)

    def c_helper_call(self):
        if self.a > 4:
            self.r = self.helper_double(self.a)

    def c_float_math(self):
        self.f = abs(self.b - 0.5) * 2.0 + max(self.b, 0.25)

    def c_accumulate(self):
        friends = 0
        weight = 0.0
        for o in self.cell.agents:
            if o.a > 3:
                friends += 1
                weight -= o.a * 0.5
        self.r = friends
        self.f = weight

    def c_append_build(self):
        found = []
        for o in self.cell.agents:
            if o.a > 4:
                found.append(o.a)
        self.r = sum(found) + 10 * len(found)

    def c_dict_lookup(self):
        self.r = {0: 5, 1: 7, 2: 9}[self.a % 3]
        self.f = {(True, 0): 0.5, (False, 0): 1.5}[(self.b > 0.5, 0)]

    def c_star_list(self):
        group = [*self.cell.agents, self]
        self.r = len(group)

    def c_nested(self):
        k = 0
        if self.a > 2:
            if self.b > 0.5:
                k = 1
            else:
                k = 2
        else:
            k = 3
        self.r = k * 10 + self.a


class ConstructModel(mesa.Model):
    """Walkers (and a few Others) on a small grid; ``step`` runs one construct method."""

    def __init__(self, method="c_if_elif", n=40, seed=None):
        super().__init__(seed=seed)
        self.method = method
        self.grid = OrthogonalMooreGrid((4, 4), torus=True, random=self.random)
        cells = self.random.choices(self.grid.all_cells.cells, k=n)
        a = [self.random.randrange(10) for _ in range(n)]
        b = [self.random.random() for _ in range(n)]
        Walker.create_agents(self, n, cells, a, b)
        Other.create_agents(self, 5, self.random.choices(self.grid.all_cells.cells, k=5))

    def step(self):
        self.agents_by_type[Walker].do(self.method)
