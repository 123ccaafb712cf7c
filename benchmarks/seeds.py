"""Many seeds of one model (a batch run): what a new seed's first step costs.

Usage: python benchmarks/seeds.py [--seeds 6] [--steps 10]

For each of Mesa's examples (small sizes: the point is the per-model cost, not the step),
builds ``--seeds`` models with seeds 0, 1, ... in one process and times, for Mesa and for
the same file on mesa_jax, the model's construction, its first step and ``--steps``
more. mesa_jax's first model pays the trace and XLA compile; a later seed of the same
shape reuses that program (and what the first model's discovery trace found), so its
first step should cost about what a later step does. Printed: seed 0's first step, the
median and the largest over the later seeds (a seed whose tables need other capacities
compiles again), the models' construction, and the ratio Mesa / mesa_jax of a whole later seed
(construction + all its steps).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import random
import statistics
import time
import warnings

import jax

from mesa_jax.redirect import mesa_example

EXAMPLES = {
    "boids": ("mesa.examples.basic.boid_flockers.model", "BoidFlockers",
              dict(population_size=50, width=50, height=50, vision=8)),
    "schelling": ("mesa.examples.basic.schelling.model", "Schelling",
                  dict(width=20, height=20, homophily=0.5)),
    "virus": ("mesa.examples.basic.virus_on_network.model", "VirusOnNetwork",
              dict(num_nodes=30, avg_node_degree=3, initial_outbreak_size=3)),
    "game_of_life": ("mesa.examples.basic.conways_game_of_life.model", "ConwaysGameOfLife",
                     dict(width=20, height=20)),
    "epstein": ("mesa.examples.advanced.epstein_civil_violence.model", "EpsteinCivilViolence",
                dict(width=12, height=12)),
}


def run_seed(cls, kwargs, seed, steps):
    random.seed(seed)  # the virus example's graph comes from the global generator
    t0 = time.perf_counter()
    m = cls(seed=seed, **kwargs)
    t1 = time.perf_counter()
    m.step()
    t2 = time.perf_counter()
    for _ in range(steps):
        m.step()
    len(list(m.agents))  # a host read: catch the compiled model up
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--models", default=",".join(EXAMPLES))
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {platform.machine()}, {jax.device_count()} {jax.default_backend()} device(s), "
          f"jax {jax.__version__}; {args.seeds} seeds, first step + {args.steps} steps each")
    print(f"{'model':<14}{'mesa 1st s':>11}{'jax seed-0 1st s':>18}{'jax later 1st s':>17}"
          f"{'(max)':>8}{'build: mesa s':>15}{'jax s':>8}{'later seed: mesa s':>20}{'jax s':>9}{'ratio':>8}")
    for name in args.models.split(","):
        module, cls_name, kwargs = EXAMPLES[name]
        theirs = getattr(importlib.import_module(module), cls_name)
        ours = getattr(mesa_example(module), cls_name)
        mesa_runs = [run_seed(theirs, kwargs, s, args.steps) for s in range(args.seeds)]
        jax_runs = [run_seed(ours, kwargs, s, args.steps) for s in range(args.seeds)]
        mesa_whole = statistics.median(r[2] for r in mesa_runs[1:])
        jax_whole = statistics.median(r[2] for r in jax_runs[1:])
        print(f"{name:<14}{statistics.median(r[1] for r in mesa_runs):>11.4f}{jax_runs[0][1]:>18.3f}"
              f"{statistics.median(r[1] for r in jax_runs[1:]):>17.4f}{max(r[1] for r in jax_runs[1:]):>8.3f}"
              f"{statistics.median(r[0] for r in mesa_runs):>15.4f}{statistics.median(r[0] for r in jax_runs):>8.4f}"
              f"{mesa_whole:>20.4f}"
              f"{jax_whole:>9.4f}{mesa_whole / jax_whole:>7.1f}x")


if __name__ == "__main__":
    main()
