"""Moves into capacity-limited cells inside a parallel agent call: claims and rounds.

When every agent acts at once, two agents may pick the same free cell of a grid with a
``capacity`` (``SingleGrid``, ``OrthogonalMooreGrid(capacity=1)``, ...). A move there is a
*claim*: against the occupancy at the start of the round, each target cell accepts as
many claimants as it has free places, in random priority order. An agent whose claim
loses has its whole call rolled back (its own attributes and its effects on others) and
runs again in the next round, against the occupancy the winners left, with fresh random
draws. After ``rounds`` rounds (default 8; ``mesa_jax.set_claim_rounds``) agents still
losing keep their place; they are counted in ``mesa_jax.diagnostics(model)
["unresolved_claims"]``. If such an agent was aiming at a cell that was already full, that
is Mesa's "cell is full" error, raised after the step. Two agents never end up over a
cell's capacity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._random import substream

__all__ = ["limited_columns", "resolve", "rounds", "set_claim_rounds"]

_ROUNDS = [8]


def set_claim_rounds(n: int) -> None:
    """How many rounds a parallel call gives agents whose moves collided (default 8)."""
    if int(n) < 1:
        raise ValueError("need at least one round")
    _ROUNDS[0] = int(n)


def claim_rounds(model):
    """The number of claim rounds compiled steps of ``model`` use."""
    return int(model.__dict__.get("_mj_claim_rounds") or _ROUNDS[0])


def limited_columns(table, written):
    """The position columns of ``table`` on capacity-limited grids that a call wrote."""
    return [(col, geom) for col, geom in table.spaces.items()
            if geom.capacity is not None and (id(table), col) in written]


def resolve(ctx, table, own, active, limited):
    """Which rows' claims lose this round: (lost, aimed at a cell full at the round start)."""
    cap = table.cap
    rows = jnp.arange(cap, dtype=jnp.int32)
    lost = jnp.zeros(cap, bool)
    blocked = jnp.zeros(cap, bool)
    targets = jnp.full(cap, -1, jnp.int32)
    for col, geom in limited:
        new = own[col]
        moving = active & own["__alive__"] & (new != table.cols[col]) & (new >= 0)
        counts = geom.traced_counts(ctx)
        free = jnp.maximum(jnp.int32(geom.capacity) - counts, 0)
        free = jnp.concatenate([free, jnp.zeros(1, jnp.int32)])
        target = jnp.where(moving, new, geom.num_cells)
        bits = ctx.frame.next_bits((cap,))
        if geom.capacity == 1:
            # one place per cell: the highest random priority wins (row in the low bits
            # makes priorities unique), two scatters instead of a sort
            shift = max(1, int(cap - 1).bit_length())
            prio = (((bits >> 1) >> shift) << shift).astype(jnp.int32) | rows
            prio = jnp.where(moving, prio, -1)
            best = jnp.full(geom.num_cells + 1, -1, jnp.int32).at[target].max(prio)
            ok = (best[target] == prio) & (free[target] > 0)
        else:
            prio = (bits >> 1).astype(jnp.int32)
            order = jnp.lexsort((rows, prio, target))  # by target, then random priority
            st = target[order]
            rank_sorted = jnp.arange(cap, dtype=jnp.int32) - jnp.searchsorted(st, st, side="left").astype(jnp.int32)
            rank = jnp.zeros(cap, jnp.int32).at[order].set(rank_sorted)
            ok = rank < free[target]
        lost = lost | (moving & ~ok)
        blocked = blocked | (moving & (free[target] == 0))
        targets = jnp.where(moving, new, targets)
    return lost, blocked, targets


def rounds(ctx, table, first, rerun):
    """Re-run the losers of ``first`` (a ``resolve`` result) until none lose or rounds run out."""
    from ._activation import with_flag_names

    frame = ctx.frame
    base = frame.next_bits()
    final = with_flag_names(ctx, lambda names: _loop(ctx, first, rerun, base, names))
    (pending, blocked, targets), _ = final
    pending = pending & table.alive
    ctx.diagnose("unresolved_claims", jnp.sum(pending.astype(jnp.int32)))
    for geom in table.spaces.values():
        if geom.capacity is not None:
            bad = pending & blocked
            first = jnp.argmax(bad)
            ctx.report_error(geom.full_error, jnp.any(bad), jnp.stack([table.uid[first], targets[first]]))
            break


def _loop(ctx, first, rerun, base, flag_names):
    from ._activation import _carried, _loop_round, _same_types

    model = ctx.model
    max_rounds = claim_rounds(model)
    get, put = _carried(model, flag_names)
    frame = ctx.frame

    def cond(carry):
        (pending, _, _), r = carry[3]
        return (r < max_rounds) & jnp.any(pending)

    def body(carry):
        put(carry)
        (pending, _, _), r = carry[3]
        saved = frame.rng, frame.draws
        frame.rng, frame.draws = substream(base, r), 0
        box = {}
        try:
            flags = _loop_round(ctx, carry, flag_names, lambda: box.setdefault("res", rerun(pending, r)))
        finally:
            frame.rng, frame.draws = saved
        return _same_types(get(flags, (box["res"], r + 1)), carry)

    final = jax.lax.while_loop(cond, body, get(ctx.flags, (first, jnp.int32(1))))
    put(final)
    for n, v in final[2].items():
        ctx.flags[n] = v
    return final[3]
