"""``batch_run`` with Mesa's signature."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

__all__ = ["batch_run"]


def _param_combinations(parameters):
    keys, values = [], []
    for k, v in parameters.items():
        keys.append(k)
        if isinstance(v, str) or not isinstance(v, Iterable):
            v = [v]
        values.append(list(v))
    for combo in itertools.product(*values):
        yield dict(zip(keys, combo))


def batch_run(model_cls, parameters: Mapping, number_processes=1, iterations=1,
              data_collection_period=-1, max_steps=1000, display_progress=True, rng=None):
    """Run ``model_cls`` for every parameter combination and iteration (Mesa's API).

    Returns:
        A list of dicts: the parameters, ``RunId``, ``iteration``, ``Step`` and the model
        reporters' values at the collected steps.
    """
    del number_processes
    seeds = list(rng) if isinstance(rng, (list, tuple)) else [rng] * iterations
    results = []
    run_id = 0
    for params in _param_combinations(dict(parameters)):
        for it, seed in enumerate(seeds[:iterations] if len(seeds) >= iterations else seeds * iterations):
            kwargs = dict(params)
            if seed is not None:
                kwargs["rng"] = seed
            model = model_cls(**kwargs)
            model.run_for(max_steps) if model.running else None
            dc = getattr(model, "datacollector", None)
            rows = []
            if dc is not None:
                mv = dc.model_vars
                n = len(next(iter(mv.values()))) if mv else 0
                steps = range(n) if data_collection_period == 1 else [n - 1]
                for s in steps:
                    rows.append({**params, "RunId": run_id, "iteration": it, "Step": s,
                                 **{k: v[s] for k, v in mv.items()}})
            else:
                rows.append({**params, "RunId": run_id, "iteration": it, "Step": model.steps})
            results.extend(rows)
            run_id += 1
    return results
