"""Births and deaths every step: Mesa vs mesa_jax on the same model, side by side.

Critters on a torus ``OrthogonalMooreGrid`` (density 0.5 agents per cell): each step
every critter moves to a random neighbouring cell, loses one energy, dies below zero,
else with probability 0.1 gives birth to a critter with 10 energy in its cell (a
population that drifts slowly: each critter lives 11 steps and has about one
child). mesa_jax's births go through the nursery (see docs/architecture.md,
"Births"). Compile time (first step minus a step) is reported apart from step time;
the ratio is Mesa's step time over mesa_jax's per live agent (the populations drift).

Usage: python benchmarks/births.py [--sizes 1000,10000,100000] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import jax

import mesa
import mesa.discrete_space
import mesa_jax
import mesa_jax.discrete_space


def build(base, ds):
    class Critter(ds.CellAgent):
        def __init__(self, model, energy, cell):
            super().__init__(model)
            self.energy = energy
            self.cell = cell

        def step(self):
            self.cell = self.cell.neighborhood.select_random_cell()
            self.energy -= 1
            if self.energy < 0:
                self.remove()
            elif self.random.random() < 0.1:
                Critter(self.model, 10, self.cell)

    class Critters(base.Model):
        def __init__(self, n=1000, seed=None):
            super().__init__(seed=seed)
            side = max(4, round(math.sqrt(2 * n)))
            self.grid = ds.OrthogonalMooreGrid((side, side), torus=True, random=self.random)
            cells = list(self.grid.all_cells)
            for _ in range(n):
                Critter(self, self.random.randrange(11), self.random.choice(cells))

        def step(self):
            self.agents.shuffle_do("step")

    return Critters


def _block(model):
    for t in model._mj_tables.values():
        jax.block_until_ready(t.alive)


def time_mesa(cls, n, steps, seed):
    m = cls(n=n, seed=seed)
    m.step()
    per_agent = []
    for _ in range(steps):
        live = len(m.agents)
        t0 = time.perf_counter()
        m.step()
        per_agent.append((time.perf_counter() - t0) / max(live, 1))
    return statistics.median(per_agent), len(m.agents)


def time_jax(cls, n, steps, seed, warmup):
    m = cls(n=n, seed=seed)
    t0 = time.perf_counter()
    m.step()
    _block(m)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        m.step()
    _block(m)
    replays = m._mj_compiled.replays
    live = []
    t0 = time.perf_counter()
    for _ in range(steps):
        live.append(len(m.agents))  # one host read of the alive mask per step
        m.step()
    _block(m)
    step = (time.perf_counter() - t0) / steps
    return {"compile": max(first - step, 0.0), "step": step, "live": statistics.mean(live),
            "replays": (replays, m._mj_compiled.replays - replays),
            "rows": max(t.cap for t in m._mj_tables.values())}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mesa-steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    ours = build(mesa_jax, mesa_jax.discrete_space)
    theirs = build(mesa, mesa.discrete_space)
    print(f"jax {jax.__version__}, {jax.default_backend()}")
    head = (f"{'n':>7} {'live':>8} {'mesa us/agent':>14} {'jax ms/step':>12} {'jax us/agent':>13} "
            f"{'compile s':>10} {'speed-up':>9}")
    lines = [head, "-" * len(head)]
    for n in [int(x) for x in args.sizes.split(",")]:
        runs, ratios = [], []
        for seed in range(args.repeats):
            j = time_jax(ours, n, args.steps, seed, args.warmup)
            mesa_per_agent, _ = time_mesa(theirs, n, args.mesa_steps, seed)
            jax_per_agent = j["step"] / max(j["live"], 1)
            runs.append((j, mesa_per_agent, jax_per_agent))
            ratios.append(mesa_per_agent / jax_per_agent)
        print(f"n={n}: ratios per repeat {[round(r, 1) for r in ratios]}; grow-and-replay "
              f"compiles before / during timing {[r[0]['replays'] for r in runs]}; rows "
              f"{[r[0]['rows'] for r in runs]}")
        j, mesa_pa, jax_pa = sorted(runs, key=lambda r: r[1] / r[2])[len(runs) // 2]
        lines.append(f"{n:>7} {j['live']:>8.0f} {mesa_pa * 1e6:>14.2f} {j['step'] * 1e3:>12.2f} "
                     f"{jax_pa * 1e6:>13.3f} {runs[0][0]['compile']:>10.2f} "
                     f"{statistics.median(ratios):>8.1f}x")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
