"""``batch_run`` with Mesa's signature and results."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from tqdm.auto import tqdm

__all__ = ["batch_run"]


def _model_kwargs(parameters: Mapping) -> list[dict]:
    """Every combination of the parameters' values (a string or a non-iterable is one
    value; an empty list, tuple or set is an error, as in Mesa)."""
    choices = []
    for name, values in parameters.items():
        if isinstance(values, str):
            values = [values]
        elif isinstance(values, (list, tuple, set)) and not values:
            raise ValueError(f"Parameter '{name}' contains an empty iterable, which is not allowed.")
        else:
            try:
                values = list(values)
            except TypeError:
                values = [values]
        choices.append([(name, v) for v in values])
    return [dict(combo) for combo in itertools.product(*choices)]


def batch_run(model_cls, parameters: Mapping[str, Any], number_processes: int | None = 1,
              iterations: int = 1, data_collection_period: int = -1, max_steps: int = 1000,
              display_progress: bool = True, rng=None) -> list[dict[str, Any]]:
    """Run ``model_cls`` for every combination of ``parameters``, ``iterations`` times
    (Mesa's ``batch_run``: the same runs, run ids, stopping rule and rows).

    Each run steps while ``model.running`` and ``model.steps <= max_steps`` and reads
    its ``datacollector`` at every ``data_collection_period``-th step and the last one
    (-1: the last only). A row holds ``RunId``, ``iteration``, ``Step``, the parameters
    and the model reporters' values; with agent reporters there is one such row per
    agent, with its ``AgentID`` and values. Runs go one after another in this process
    (``number_processes`` is accepted and ignored: runs of one shape share a compiled
    program, which separate processes would each compile again). ``rng``, an extension:
    a seed per iteration (a list) or one seed for all, passed as the model's ``rng``.
    """
    del number_processes
    seeds = list(rng) if isinstance(rng, (list, tuple)) else [rng] * iterations
    runs = [(it, kwargs) for it in range(iterations) for kwargs in _model_kwargs(parameters)]
    results: list[dict[str, Any]] = []
    with tqdm(total=len(runs), disable=not display_progress) as bar:
        for run_id, (it, kwargs) in enumerate(runs):
            extra = {} if seeds[it % len(seeds)] is None else {"rng": seeds[it % len(seeds)]}
            results.extend(_run(model_cls, run_id, it, kwargs, extra, max_steps, data_collection_period))
            bar.update()
    return results


def _run(model_cls, run_id, iteration, kwargs, extra, max_steps, period):
    model = model_cls(**kwargs, **extra)
    while model.running and model.steps <= max_steps:
        model.step()
    dc = getattr(model, "datacollector", None)
    if dc is None:
        raise AttributeError("The model does not have a datacollector attribute. "
                             "Please add a DataCollector to your model.")
    last = model.steps - 1
    steps = list(range(0, model.steps, period))
    if not steps or steps[-1] != last:
        steps.append(last)
    model_vars = dc.model_vars
    agent_rows = dc._agent_rows(set(steps))
    rows = []
    for step in steps:
        head = {"RunId": run_id, "iteration": iteration, "Step": step, **kwargs,
                **{name: values[step] for name, values in model_vars.items()}}
        agents = agent_rows.get(step)
        rows.extend([{**head, **a} for a in agents] if agents else [head])
    return rows
