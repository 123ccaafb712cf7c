"""Boltzmann wealth: Mesa's own example vs the same file on mesa_jax, side by side.

Usage: python benchmarks/boltzmann.py [--sizes 1000,10000,100000] [--steps 20] [--repeats 3]

Density 1 agent per cell (Mesa's benchmark configuration). Mesa's and mesa_jax's step
times are medians, measured in the same process; mesa_jax's compile time (first step minus
a step) is reported separately, from the first (cold) repeat — later repeats of the
same shape reuse the compiled program. Also: bytes of agent state per agent at n = 1,000,000.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import jax

import mesa_jax
from mesa_jax._compare import bytes_per_agent, compare_model, format_rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mesa-steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="whole comparisons; medians reported")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps after the compile (a cell index that grows replays there)")
    p.add_argument("--bytes-n", type=int, default=1_000_000)
    p.add_argument("--activation", default="parallel")
    args = p.parse_args()
    mesa_jax.set_activation(args.activation)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} "
          f"{jax.default_backend()} device(s), jax {jax.__version__}, activation={args.activation}")
    runs = [compare_model("boltzmann", sizes, steps=args.steps, mesa_steps=args.mesa_steps, seed=s,
                          warmup=args.warmup)
            for s in range(args.repeats)]
    rows = []
    for i, n in enumerate(sizes):
        rs = [r[i] for r in runs]
        med = {k: statistics.median([r[k] for r in rs]) if rs[0][k] is not None else None
               for k in rs[0] if k != "model"}
        med["model"] = "boltzmann"
        med["n"] = n
        med["jax_compile_s"] = rs[0]["jax_compile_s"]  # cold: later repeats reuse the program
        rows.append(med)
        print(f"n={n}: ratios per repeat {[round(r['ratio'], 1) for r in rs if r['ratio']]}")
    print(format_rows(rows))
    if args.bytes_n:
        bpa, model = bytes_per_agent("boltzmann", args.bytes_n)
        print(f"agent state at n={args.bytes_n}: {bpa:.1f} bytes/agent "
              f"(columns: {sorted(next(iter(model._mj_tables.values())).cols)} + alive + unique_id)")


if __name__ == "__main__":
    main()
