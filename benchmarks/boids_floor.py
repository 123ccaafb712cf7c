"""How fast can any JAX program run Mesa's Boids step on this machine?

A hand-written, whole-array JAX version of the Boid flockers step (Mesa's
``mesa.examples.basic.boid_flockers``: every boid's neighbours within ``vision`` on a
torus, cohesion, separation, alignment, normalise, move; each boid's neighbours kept (as a
``[n, n]`` mask: Mesa keeps ``self.neighbors``), the model's average heading and angles;
no per-agent Python, no checks, steps dispatched back to back without a sync), jitted,
timed side by side with Mesa's own model and with that file run on mesa_jax, on the same
parameters. It is the floor for a JAX backend on this CPU: mesa_jax traces the unmodified
Mesa file and cannot do less work than this.

Usage: python benchmarks/boids_floor.py [--n 400] [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import mesa_jax  # noqa: F401 - the allocator settings, as for mesa_jax itself
from mesa_jax._compare import MODELS, _load


def make_step(size, vision, separation, speed, cohere, separate, match):
    size = jnp.float32(size)

    def wrap(d):
        return jnp.where(jnp.abs(d) > size / 2, d - jnp.sign(d) * size, d)

    def step(pos, direction):
        # one [i, j] plane per component (XLA on the CPU reduces planes faster than the
        # middle axis of [i, j, 2]); j's position seen from i, the short way round
        dx = wrap(pos[None, :, 0] - pos[:, None, 0])
        dy = wrap(pos[None, :, 1] - pos[:, None, 1])
        dist = jnp.sqrt(dx * dx + dy * dy)
        n = pos.shape[0]
        near = (dist <= vision) & ~jnp.eye(n, dtype=bool)
        close = near & (dist < separation)
        count = near.sum(1)
        nf, cf = near.astype(jnp.float32), close.astype(jnp.float32)
        coh = jnp.stack([(nf * dx).sum(1), (nf * dy).sum(1)], 1) * cohere
        sep = -jnp.stack([(cf * dx).sum(1), (cf * dy).sum(1)], 1) * separate
        mat = (nf @ direction) * match
        new = direction + (coh + sep + mat) / jnp.maximum(count, 1)[:, None]
        new = new / jnp.sqrt(new[:, :1] ** 2 + new[:, 1:] ** 2)
        new = jnp.where(count[:, None] > 0, new, direction)
        mean = new.mean(0)
        heading = jnp.arctan2(mean[1], mean[0])
        angles = jnp.degrees(jnp.arctan2(new[:, 0], new[:, 1]))
        return jnp.mod(pos + new * speed, size), new, near, heading, angles

    return jax.jit(step)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    side = 150.0 * (args.n / 400) ** 0.5
    Boids = importlib.import_module("mesa.examples.basic.boid_flockers.model").BoidFlockers
    _, Ours = _load("boids")
    mesa_times, floor_times, ours_times = [], [], []
    for r in range(args.repeats):
        model = Boids(population_size=args.n, width=side, height=side, vision=15, seed=r)
        model.step()  # Mesa's first step is left out, as in benchmarks/examples.py
        t0 = time.perf_counter()
        for _ in range(3):
            model.step()
        mesa_times.append((time.perf_counter() - t0) / 3)
        a = list(model.agents)[0]
        step = make_step(side, 15.0, a.separation, a.speed, a.cohere_factor,
                         a.separate_factor, a.match_factor)
        pos = jnp.asarray(np.array([b.position for b in model.agents]), jnp.float32)
        direction = jnp.asarray(np.array([b.direction for b in model.agents]), jnp.float32)
        pos, direction, *_ = jax.block_until_ready(step(pos, direction))  # compile
        t0 = time.perf_counter()
        for _ in range(args.steps):
            pos, direction, *_ = step(pos, direction)
        jax.block_until_ready(pos)
        floor_times.append((time.perf_counter() - t0) / args.steps)
        ours = Ours(**MODELS["boids"][2](args.n), seed=r)
        for _ in range(20):  # compile and warm-up
            ours.step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            ours.step()
        ours_times.append((time.perf_counter() - t0) / args.steps)
        print(f"repeat {r}: Mesa {mesa_times[-1] * 1e3:.2f} ms/step, mesa_jax "
              f"{ours_times[-1] * 1e3:.3f} ms/step ({mesa_times[-1] / ours_times[-1]:.1f}x), "
              f"hand-written JAX {floor_times[-1] * 1e3:.3f} ms/step "
              f"({mesa_times[-1] / floor_times[-1]:.1f}x)", flush=True)
    med = statistics.median
    m = med(mesa_times)
    print(f"n={args.n}: Mesa {m * 1e3:.2f} ms/step; mesa_jax {med(ours_times) * 1e3:.3f} ms/step, "
          f"median ratio {med(x / y for x, y in zip(mesa_times, ours_times)):.1f}x; hand-written "
          f"JAX {med(floor_times) * 1e3:.3f} ms/step, median ratio "
          f"{med(x / y for x, y in zip(mesa_times, floor_times)):.1f}x")


if __name__ == "__main__":
    main()
