"""Mesa's basic examples vs the same files on mesa_jax, side by side.

Usage: python benchmarks/examples.py --model schelling|boids|game_of_life|all
                                     [--scales 1,10,100] [--steps 10] [--repeats 3]

Sizes (agents): Schelling "large" from Mesa's benchmarks/configurations.py (100x100,
density 0.8, radius 2, homophily 1: 8,000 agents), Boids "large" (400 boids, 150x150,
vision 15; the space grows with the population to keep the density), Game of Life
1000x1000 (1,000,000 cells); ``--scales`` multiplies the agent count. Mesa is skipped
above ``--mesa-max`` agents. Step times and side-by-side ratios are medians of the repeats (Mesa is timed in
every repeat up to 200,000 agents, once above); mesa_jax's compile
time (first step minus a step) is reported separately, from the first repeat; then
``--warmup`` untimed steps let capacities that grow with the model's state (cell-list
buckets as boids flock) settle, their grow-and-replay compiles are counted and printed. A replay during the timed steps shows up in the step time (the
median over repeats removes a single one).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import warnings

import jax

from mesa_jax._compare import compare_model, format_rows

BASE = {"schelling": 8000, "boids": 400, "game_of_life": 1_000_000}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="all")
    p.add_argument("--scales", default="1,10,100")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--mesa-steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mesa-max", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=20,
                   help="untimed mesa_jax steps after the first (capacities settle)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    names = list(BASE) if args.model == "all" else [args.model]
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} "
          f"{jax.default_backend()} device(s), jax {jax.__version__}")
    for name in names:
        sizes = [int(BASE[name] * float(s)) for s in args.scales.split(",")]
        if name == "game_of_life":
            sizes = [n for n in sizes if n <= 1_000_000]  # 1000x1000 is the target size
        rows = []
        for n in sizes:
            runs = [compare_model(name, [n], steps=args.steps, mesa_steps=args.mesa_steps,
                                  seed=s, mesa_max=args.mesa_max if (s == 0 or n <= 200_000) else 0,
                                  warmup=args.warmup)[0]
                    for s in range(args.repeats)]
            row = dict(runs[0])
            row["jax_step_s"] = statistics.median(r["jax_step_s"] for r in runs)
            row["jax_agent_steps_per_s"] = n / row["jax_step_s"]
            mesa = [r["mesa_step_s"] for r in runs if r["mesa_step_s"]]
            ratios = [r["ratio"] for r in runs if r["ratio"]]
            if mesa:
                row["mesa_step_s"] = statistics.median(mesa)
                row["ratio"] = statistics.median(ratios)  # ratios measured side by side
            rows.append(row)
            print(f"{name} n={n}: mesa_jax step per repeat "
                  f"{[round(r['jax_step_s'] * 1000, 2) for r in runs]} ms; ratio per repeat "
                  f"{[round(x, 1) for x in ratios]}; grow-and-replay compiles before / during "
                  f"timing {[(r['replays'], r['timed_replays']) for r in runs]}", flush=True)
        print(format_rows(rows), flush=True)


if __name__ == "__main__":
    main()
