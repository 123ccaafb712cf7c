"""Side-by-side runs of real Mesa and mesa_jax on the same model (``mesa-jax compare``)."""

from __future__ import annotations

import gc
import statistics
import time

import jax

__all__ = ["MODELS", "compare_model", "format_rows"]


def _boltzmann_args(n):
    side = max(1, int(round(n ** 0.5)))
    return {"n": n, "width": side, "height": side}


def _schelling_args(n):
    # Mesa's benchmark "large": 100x100, density 0.8, radius 2, homophily 1 (n = 8,000)
    side = max(2, int(round((n / 0.8) ** 0.5)))
    return {"width": side, "height": side, "density": 0.8, "radius": 2, "homophily": 1}


def _boids_args(n):
    # Mesa's benchmark "large": 400 boids on 150x150, vision 15; density kept when scaled
    side = 150.0 * (n / 400) ** 0.5
    return {"population_size": n, "width": side, "height": side, "vision": 15}


def _life_args(n):
    side = max(2, int(round(n ** 0.5)))
    return {"width": side, "height": side}


# name -> (dotted module, class name, kwargs builder from a size n)
MODELS = {
    "boltzmann": ("mesa.examples.basic.boltzmann_wealth_model.model", "BoltzmannWealth",
                  _boltzmann_args),
    "schelling": ("mesa.examples.basic.schelling.model", "Schelling", _schelling_args),
    "boids": ("mesa.examples.basic.boid_flockers.model", "BoidFlockers", _boids_args),
    "game_of_life": ("mesa.examples.basic.conways_game_of_life.model", "ConwaysGameOfLife",
                     _life_args),
}


def _load(name):
    import importlib

    from .redirect import mesa_example

    dotted, cls_name, _ = MODELS[name]
    real = getattr(importlib.import_module(dotted), cls_name)
    jaxed = getattr(mesa_example(dotted), cls_name)
    return real, jaxed


def _block(model):
    for t in model._mj_tables.values():
        jax.block_until_ready(t.alive)


def time_mesa(cls, kwargs, steps, seed):
    """Median of ``steps`` Mesa steps after a first one (left out, as mesa_jax's compile)."""
    model = cls(**kwargs, seed=seed)
    model.step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_jax(cls, kwargs, steps, seed, repeats=3, warmup=0):
    t0 = time.perf_counter()
    model = cls(**kwargs, seed=seed)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.step()  # trace + compile + one step
    _block(model)
    first = time.perf_counter() - t0
    for _ in range(warmup):  # capacities settle (grow-and-replay compiles are not timed)
        model.step()
    _block(model)
    replays_warm = model._mj_compiled.replays
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            model.step()
        _block(model)
        runs.append((time.perf_counter() - t0) / steps)
    step_time = statistics.median(runs)
    return {"build": build, "compile": max(first - step_time, 0.0), "step": step_time,
            "model": model, "replays": replays_warm,
            "timed_replays": model._mj_compiled.replays - replays_warm}


def compare_model(name, sizes, steps=20, mesa_steps=None, seed=42, mesa_max=None, warmup=0):
    """Rows of measurements for ``name`` at each size; Mesa skipped above ``mesa_max``.

    mesa_jax: one step (trace + compile), ``warmup`` untimed steps (capacities that grow
    with the model's state settle), then 3 x ``steps`` timed steps (median). Mesa: one
    step, then the median of ``mesa_steps`` timed steps.
    """
    real, jaxed = _load(name)
    build_args = MODELS[name][2]
    rows = []
    for n in sizes:
        kwargs = build_args(n)
        gc.collect()
        j = time_jax(jaxed, kwargs, steps, seed, warmup=warmup)
        mesa_step = None
        if mesa_max is None or n <= mesa_max:
            gc.collect()
            mesa_step = time_mesa(real, kwargs, mesa_steps or min(steps, 10), seed)
        rows.append({
            "model": name, "n": n, "mesa_step_s": mesa_step, "jax_step_s": j["step"],
            "jax_compile_s": j["compile"], "jax_build_s": j["build"],
            "jax_agent_steps_per_s": n / j["step"],
            "mesa_agent_steps_per_s": (n / mesa_step) if mesa_step else None,
            "ratio": (mesa_step / j["step"]) if mesa_step else None,
            "replays": j["replays"], "timed_replays": j["timed_replays"],
        })
        del j
    return rows


def format_rows(rows):
    head = (f"{'model':<10} {'n':>9} {'mesa s/step':>12} {'jax s/step':>11} {'compile s':>10} "
            f"{'jax agent-steps/s':>18} {'speed-up':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mesa = f"{r['mesa_step_s']:.4f}" if r["mesa_step_s"] else "-"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        lines.append(f"{r['model']:<10} {r['n']:>9} {mesa:>12} {r['jax_step_s']:>11.5f} "
                     f"{r['jax_compile_s']:>10.2f} {r['jax_agent_steps_per_s']:>18.3g} {ratio:>9}")
    return "\n".join(lines)


def bytes_per_agent(name, n, seed=1):
    """Device bytes of agent state per agent after one compiled step."""
    _, jaxed = _load(name)
    model = jaxed(**MODELS[name][2](n), seed=seed)
    model.step()
    _block(model)
    return model.nbytes() / n, model
