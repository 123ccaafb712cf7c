"""Running an agent method for every agent of a set inside a compiled step.

Parallel activation (the default): every agent's method runs at once, vmapped over the
rows of its table, against the state at the start of the call. Own attributes are written
directly; writes to other agents and to the model are collected as effects and applied
after the vmap (``+=`` adds up, ``=`` keeps one random writer per target).

Per row: the random stream is ``substream(call_stream, row)``; the frame's mask is the row's activity
(alive and selected), so inactive rows write nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._collections import make_agent_handle
from ._context import Effect, Frame
from ._convert import convert
from ._random import substream
from .errors import UnsupportedError

__all__ = ["run_agents"]


def _method_function(cls, method):
    if isinstance(method, str):
        fn = getattr(cls, method, None)
        if fn is None:
            raise AttributeError(f"'{cls.__name__}' object has no attribute '{method}'")
        return fn
    return method


def run_agents(ctx, agentset, method, args, kwargs, shuffle):
    """Run ``method`` for every active agent of ``agentset`` (parallel activation)."""
    del shuffle  # order has no meaning when all agents act at once
    model_frame = ctx.frame
    if model_frame.agent is not None:
        raise UnsupportedError("`AgentSet.do`/`shuffle_do` called from inside an agent's step",
                               "call it from `Model.step`")
    parts = agentset._traced_parts()
    for table, active in parts:
        fn = convert(_method_function(table.cls, method))
        call_rng = model_frame.next_bits()
        names = sorted(table.cols)
        snapshot = dict(table.cols)
        alive = table.alive
        metas = []

        def one(row, act, table=table, fn=fn, call_rng=call_rng, names=names, snapshot=snapshot,
                metas=metas):
            handle = make_agent_handle(table, row, True)
            own = {n: snapshot[n][row] for n in names}
            own["__alive__"] = alive[row]
            frame = Frame(agent=handle, table=table, own=own, rng=substream(call_rng, row), mask=act)
            ctx.frames.append(frame)
            try:
                fn(handle, *args, **kwargs)
            finally:
                ctx.frames.pop()
            metas.append([(e.kind, e.table, e.attr) for e in frame.effects])
            eff = [(jnp.asarray(e.rows), jnp.asarray(e.values),
                    jnp.asarray(True if e.mask is None else e.mask)) for e in frame.effects]
            return frame.own, eff

        rows = jnp.arange(table.cap)
        own, eff = jax.vmap(one)(rows, active)
        for n in names:
            table.cols[n] = own[n]
        table.alive = own["__alive__"]
        effects = [Effect(kind, t, attr, r, v, m)
                   for (kind, t, attr), (r, v, m) in zip(metas[0], eff)]
        if effects:
            ctx.apply_effects(effects, model_frame)
        ctx.invalidate_indexes()
