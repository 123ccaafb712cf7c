"""Running an agent method for every agent of a set inside a compiled step.

Parallel activation (the default): every agent's method runs at once, vmapped over the
rows of its table, against the state at the start of the call. Own attributes are written
directly; writes to other agents and to the model are collected as effects and applied
after the vmap (``+=`` adds up, ``=`` keeps one random writer per target).

Batched activation (``set_activation("batched:B")``): the agents are dealt at random into
B batches that run one after another in a ``lax.fori_loop``; each batch runs in parallel
against the state the earlier batches left. B=1 is parallel; larger B approaches Mesa's
random sequential order.

Per row: the random stream is ``substream(call_stream, row)``; the frame's mask is the row's activity
(alive and selected), so inactive rows write nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._collections import make_agent_handle
from ._context import Effect, Frame, merge_signal, reduce_signal, signal_default
from ._convert import convert
from ._random import draw_bits, substream
from .errors import UnsupportedError

__all__ = ["run_agents"]


def _method_function(cls, method):
    if isinstance(method, str):
        fn = getattr(cls, method, None)
        if fn is None:
            raise AttributeError(f"'{cls.__name__}' object has no attribute '{method}'")
        return fn
    return method


def activation_of(model):
    """(mode, batches) for a model: its own setting, else the global default."""
    return _parse_activation(model.__dict__.get("_mj_activation") or _DEFAULT[0])


def _parse_activation(mode):
    if mode == "parallel":
        return "parallel", 1
    if isinstance(mode, str) and mode.startswith("batched"):
        _, _, b = mode.partition(":")
        return "batched", int(b or 8)
    raise ValueError(f"unknown activation mode {mode!r} (use 'parallel' or 'batched:B')")


_DEFAULT = ["parallel"]


def set_activation(mode: str = "parallel") -> None:
    """Default activation of agent sets in compiled steps.

    Arguments:
        mode: ``"parallel"`` (every agent at once against the round's starting state) or
            ``"batched:B"`` (the agents, in a random order, cut into B batches that run one
            after another, each in parallel: closer to Mesa's sequential order, B times the
            work).
    """
    _parse_activation(mode)  # reject an unknown mode here, not at the next compile
    _DEFAULT[0] = mode


def run_agents(ctx, agentset, method, args, kwargs, shuffle):
    """Run ``method`` for every active agent of ``agentset`` (see module docstring)."""
    model_frame = ctx.frame
    if model_frame.agent is not None:
        raise UnsupportedError("`AgentSet.do`/`shuffle_do` called from inside an agent's step",
                               "call it from `Model.step`")
    mode, batches = activation_of(ctx.model)
    parts = agentset._traced_parts()
    if mode == "parallel" or batches <= 1:
        _run_parallel(ctx, parts, method, args, kwargs)
        return
    _run_batched(ctx, parts, method, args, kwargs, batches)


def _carried(model, flag_names):
    """get/put of everything an agent call may change, for a loop carry.

    Object columns (host values a step does not write, or, during discovery, ones it
    writes for the first time) are not carried: put() restores their values from before
    the loop, so nothing traced inside the loop body leaks out of it."""
    tables = list(model._mj_tables.values())
    attr_names = sorted({n for n in model._mj_state_attrs if n in model.__dict__} | {"_mj_uid"})
    objects = [{k: v for k, v in t.cols.items() if getattr(v, "dtype", None) == object} for t in tables]

    def get(flags, extra=()):
        return ([(t.alive, t.uid, {k: v for k, v in t.cols.items() if k not in obj})
                 for t, obj in zip(tables, objects)],
                {n: jnp.asarray(model.__dict__[n]) for n in attr_names},
                {n: jnp.asarray(flags[n]) if n in flags else signal_default(n) for n in flag_names},
                tuple(extra))

    def put(carry):
        tabs, attrs, _, _ = carry
        for t, obj, (alive, uid, cols) in zip(tables, objects, tabs):
            t.alive, t.uid = alive, uid  # ids change where agents are born
            t.cols = {**obj, **cols}
        for n, v in attrs.items():
            model.__dict__[n] = v

    return get, put


def _loop_round(ctx, carry, flag_names, run):
    """One pass of a loop body: bind ``carry``, ``run()`` with fresh indexes and flags.

    Returns the new flags (OR-ed with the carried ones); ``run`` may not raise flags the
    loop does not carry.
    """
    ctx.invalidate_indexes()
    outer_flags, ctx.flags = ctx.flags, {}
    try:
        run()
        inner = ctx.flags
    finally:
        ctx.invalidate_indexes()
        ctx.flags = outer_flags
    unknown = set(inner) - set(flag_names)
    if unknown:
        raise _NewFlags(unknown)
    return {n: merge_signal(n, carry[2][n], inner[n]) if n in inner else carry[2][n] for n in flag_names}


class _NewFlags(Exception):
    """A loop body raised flags its carry lacks; the loop is traced again with them."""

    def __init__(self, names):
        super().__init__(sorted(names))
        self.names = set(names)


def with_flag_names(ctx, run_loop):
    """Call ``run_loop(flag_names)`` (it builds a lax loop carrying those flags), tracing
    it again with more names while its body raises flags it did not carry."""
    model = ctx.model
    names = set(_index_flags(model)) | set(ctx.flags)
    get, put = _carried(model, [])
    saved = get({})
    for _ in range(8):
        try:
            return run_loop(sorted(names))
        except _NewFlags as exc:
            put(saved)
            ctx.invalidate_indexes()
            names |= exc.names
    raise RuntimeError("internal: loop flags did not settle")


def _same_types(out, carry):
    return jax.tree.map(lambda new, old: jnp.asarray(new, jnp.result_type(old)), out, carry)


def _index_flags(model):
    return sorted({f"need:{geom.index_flag(t)}" for t in model._mj_tables.values() for geom in t.spaces.values()})


def _run_batched(ctx, parts, method, args, kwargs, batches):
    """Random batches, one after another (a lax.fori_loop), each batch in parallel."""
    model = ctx.model
    frame = ctx.frame
    base = frame.next_bits()
    batch_of = []
    for i, (t, active) in enumerate(parts):
        u = draw_bits(substream(base, 1000 + i), 1, (t.cap,))
        batch_of.append((t, active, (u % jnp.uint32(batches)).astype(jnp.int32)))

    def run_loop(flag_names):
        get, put = _carried(model, flag_names)

        def body(b, carry):
            put(carry)
            saved = (frame.rng, frame.draws)
            frame.rng, frame.draws = substream(base, b), 0
            try:
                sub = [(t, active & (bid == b)) for t, active, bid in batch_of]
                flags = _loop_round(ctx, carry, flag_names,
                                    lambda: _run_parallel(ctx, sub, method, args, kwargs))
            finally:
                frame.rng, frame.draws = saved
            return _same_types(get(flags), carry)

        final = jax.lax.fori_loop(0, batches, body, get(ctx.flags))
        put(final)
        for n, v in final[2].items():
            ctx.flags[n] = v

    with_flag_names(ctx, run_loop)


def _vmap_call(ctx, table, fn, active, call_rng, args, kwargs):
    """Run converted ``fn`` for every row of ``table`` (masked by ``active``), vmapped.

    Returns (own columns after the call, incl. ``__alive__``; effects on others).
    Nothing is written to the table.
    """
    names = sorted(n for n, c in table.cols.items() if c.dtype != object)
    # the row's own columns come in through the vmap (a slice per row), not as a gather
    # by row id, which XLA keeps as a gather: Schelling and Game of Life 5-13% faster
    cols = {n: table.cols[n] for n in names}
    cols["__alive__"] = table.alive
    metas = []

    def one(row, act, own):
        handle = make_agent_handle(table, row, True)
        own = dict(own)
        frame = Frame(agent=handle, table=table, own=own, rng=substream(call_rng, row), mask=act)
        ctx.frames.append(frame)
        try:
            fn(handle, *args, **kwargs)
        finally:
            ctx.frames.pop()
        metas.append([(e.kind, e.table, e.attr) for e in frame.effects])
        eff = [(jnp.asarray(0 if e.rows is None else e.rows), jnp.asarray(e.values),
                jnp.asarray(True if e.mask is None else e.mask)) for e in frame.effects]
        own = {n: frame.own[n] for n in [*names, "__alive__"]}  # not those typed in discovery
        return own, eff, frame.flags

    # a nursery (rows for agents born in this step, see create_agent) never acts
    n = ctx.nursery_of(table)[0]
    rows = jnp.arange(n)
    if n < table.cap:
        active, cols = active[:n], {k: v[:n] for k, v in cols.items()}
    own, eff, flags = jax.vmap(one)(rows, active, cols)
    if n < table.cap:
        full = {k: table.cols[k] for k in names} | {"__alive__": table.alive}
        own = {k: jnp.concatenate([v, full[k][n:]]) if k in full else v for k, v in own.items()}
    for name, v in flags.items():
        ctx.signal(name, reduce_signal(name, v))
    effects = [Effect(kind, t, attr, r, v, m) for (kind, t, attr), (r, v, m) in zip(metas[0], eff)]
    return own, effects


def _commit(ctx, table, own, effects, keep=None):
    """Write a call's results: own columns and effects, only for rows in ``keep``."""
    for n, v in own.items():
        old = table.alive if n == "__alive__" else table.cols[n]
        if keep is not None:
            v = jnp.where(keep.reshape(keep.shape + (1,) * (v.ndim - 1)), v, old)
        if n == "__alive__":
            table.alive = v
        else:
            table.cols[n] = v
    if keep is not None:
        for e in effects:
            m = jnp.asarray(e.mask)
            k = keep.reshape(keep.shape + (1,) * (m.ndim - 1))
            e.mask = jnp.logical_and(m, k)
    if effects:
        ctx.apply_effects(effects, ctx.frame)
    ctx.settle_births()
    ctx.invalidate_indexes()


def _run_parallel(ctx, parts, method, args, kwargs):
    """Every active agent at once, against the state at the start of the call.

    Moves into capacity-limited cells are claims (see ``_claims.py``): losers are rolled
    back and re-run in further rounds.
    """
    from . import _claims

    model_frame = ctx.frame
    for table, active in parts:
        fn = convert(_method_function(table.cls, method))
        call_rng = model_frame.next_bits()
        before = set(ctx.own_writes)
        ctx.own_writes.clear()
        own, effects = _vmap_call(ctx, table, fn, active, call_rng, args, kwargs)
        written = set(ctx.own_writes)
        ctx.own_writes |= before
        limited = _claims.limited_columns(table, written)
        if not limited:
            _commit(ctx, table, own, effects)
            continue
        lost = _claims.resolve(ctx, table, own, active, limited)
        _commit(ctx, table, own, effects, keep=~lost[0])
        if ctx.discovery:
            continue

        def rerun(pending, r, fn=fn, table=table, call_rng=call_rng, limited=limited):
            own, effects = _vmap_call(ctx, table, fn, pending, substream(call_rng, 7919 + r), args, kwargs)
            lost = _claims.resolve(ctx, table, own, pending, limited)
            _commit(ctx, table, own, effects, keep=~lost[0])
            return lost

        _claims.rounds(ctx, table, lost, rerun)
