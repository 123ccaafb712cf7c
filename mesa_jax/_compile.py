"""Split → trace → merge: the one place where the model crosses into jit.

::

    model (Python object)                      jitted  state -> (state, aux)
    ┌───────────────────────┐   split    ┌──────────────────────────────────────┐
    │ tables: numpy/device  │ ─────────▶ │ state pytree: columns, alive, uids,  │
    │ model attrs           │            │ model numbers/arrays, key            │
    │ grids, collectors ... │ (static)   └──────────────────────────────────────┘
    └───────────────────────┘                 │ merge: bind tracers to the model,
              ▲                               │ run the converted Model.step,
              │ merge (concrete)              ▼ split again
              └──────────────────── new state + aux (collected data, flags)

Model attributes holding numbers are static (baked into the trace) until a step writes
them; a first abstract trace (``jax.eval_shape``) finds those writes and promotes the
attributes to state, then the real trace runs once. A changed static value (or a new
column, a grown table) is noticed by a fingerprint and recompiles. Capacities (cell
index slots) are allocated here; a step that overflows one sets a flag, and the host
doubles the capacity, recompiles and replays the step from the saved state.
"""

from __future__ import annotations

import enum
import math
import os
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from ._activation import activation_of
from ._claims import claim_rounds
from ._context import TraceContext, is_traced
from ._convert import convert
from ._gridindex import default_capacity
from .errors import MesaJaxError, UnsupportedError, step_error, user_location

__all__ = ["compiled_step", "CompiledStep"]

_SIMPLE = (bool, int, float, str, type(None), np.bool_, np.integer, np.floating)
_MAX_REPLAYS = 12
# the most steps one call of the stepping loop runs ahead of the user's step() calls
# (``MESA_JAX_RUN_AHEAD=1``: none, every step() is one program call that waits for its step)
_AHEAD_MAX = max(1, int(os.environ.get("MESA_JAX_RUN_AHEAD", "16")))
_ROW_WORDS = 16384  # model numbers (array elements) a row of the stepping loop holds at most
# steps slower than this do not run ahead: a call's dispatch (~0.1-0.2 ms) is then a few
# percent of the step, less than what a landing re-runs or a chunk computes unasked
_AHEAD_STEP_S = 0.002
# bigger states take the one-step program (4,000 boids: the loop's step was 5-10% slower)
_AHEAD_STATE_BYTES = 1 << 21


class _Shared:
    """Compiled functions shared by every model of one class with the same static shape.

    The jitted callables look the model up in ``holder`` at trace time, so that a second
    model instance reuses the first one's trace and XLA program (tests build many seeds).
    """

    def __init__(self):
        self.holder = None
        self.fns: dict = {}
        self.alias = False  # only records what discovery found; no program
        self.state_attrs = None
        self.space_keys = None
        self.capacities = {}
        self.retyped = []  # neighbour tables (by space) the trace passes as data
        # what the host needs to read a program's outputs, one record per trace (jit keeps
        # a trace per input signature: a model attribute that changes type traces again,
        # and setting the old type from the host hits the first trace). Each program tags
        # its signal vector with its record's index.
        self.traces = []  # {"layout": [(signal, size)], "scalars": [(name, dtype)], "targets": [path]}
        self.pending = None  # the record of the step being traced
        self.reads = set()  # model attributes its traces read: their contents key the programs
        self.ahead_ok = False  # whether step() runs through the stepping loop (see step_once)


_SHARED: dict = {}
_PROMOTED: dict = {}  # (model class, step function) -> sets of attributes discovery promoted


def _signature(v, depth=0):
    """A hashable description of a static model attribute (what a trace bakes in)."""
    if isinstance(v, _SIMPLE):
        return v
    if depth > 3:
        return type(v).__name__
    geom = getattr(v, "geom", None)
    if geom is not None:
        return (type(v).__name__, geom.signature(), getattr(v, "capacity", None))
    if isinstance(v, (list, tuple)) and len(v) <= 64:
        return tuple(_signature(x, depth + 1) for x in v)
    if isinstance(v, dict) and len(v) <= 64:
        return tuple(sorted((str(k), _signature(x, depth + 1)) for k, x in v.items()))
    if hasattr(v, "model_reporters"):
        reps = {**v.model_reporters, **v.agent_reporters}
        return ("DataCollector",) + tuple(sorted(
            (k, getattr(getattr(r, "__func__", r), "__code__", r) if not isinstance(r, str) else r)
            for k, r in reps.items()))
    return type(v).__name__


_NOT_READ = frozenset({"random", "rng", "_rng", "step", "_user_step"})


def _content(v, seen=None):
    """A hashable key for everything a trace may bake in from a host value a step reads:
    numbers, strings, containers of any length and depth, numpy arrays, plain objects'
    attributes (a parameters object), so that another value means another program."""
    if isinstance(v, _SIMPLE):
        return (type(v).__name__, v)
    if isinstance(v, np.ndarray):
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (enum.Enum, type, types.FunctionType, types.BuiltinFunctionType,
                      types.MethodType, types.ModuleType)):
        return v
    geom = getattr(v, "geom", None)
    if geom is not None or hasattr(v, "model_reporters"):
        return _signature(v)
    row = v.__dict__.get("_row") if hasattr(v, "__dict__") else None
    if row is not None:  # an agent handle: its class and row
        return (type(v).__name__, "row", int(row) if not is_traced(row) else "traced")
    seen = set() if seen is None else seen
    if id(v) in seen:
        return ("cycle", type(v).__name__)
    seen.add(id(v))
    if isinstance(v, (list, tuple)):
        return (type(v).__name__,) + tuple(_content(x, seen) for x in v)
    if isinstance(v, dict):
        return ("dict",) + tuple((_content(k, seen), _content(x, seen)) for k, x in v.items())
    if isinstance(v, (set, frozenset)):
        return ("set", frozenset(_content(x, seen) for x in v))
    if isinstance(v, _model_classes()):
        return (type(v).__name__,)
    fields = getattr(v, "__dict__", None)
    if fields is None:
        fields = {k: getattr(v, k) for k in getattr(type(v), "__slots__", ()) if hasattr(v, k)}
    return (type(v).__name__,) + tuple((k, _content(x, seen)) for k, x in fields.items())


def _model_classes():
    from .model import Model

    return (Model,)


def _static_kind(table, col):
    """What an object column holds, by name ("None", "emptylist": lists of agents of one
    class, typed by the first list a step writes; else the values' type name)."""
    nonnull = [v for v in col[: table.n] if v is not None]
    if not nonnull:
        return "None"
    if all(isinstance(v, list) for v in nonnull):
        owners = {getattr(a, "_table", None) for v in nonnull for a in v}
        if len(owners) <= 1 and None not in owners:
            return "emptylist"
    return type(nonnull[0]).__name__


def _strong(v):
    """A state number as an array of a fixed dtype (not weakly typed), so that a Python
    float from the host and a float32 from the device are the same input to the jit."""
    if isinstance(v, (bool, np.bool_)):
        return np.asarray(v, np.bool_)
    if isinstance(v, (int, np.integer)):
        return np.asarray(v, np.int32)
    if isinstance(v, (float, np.floating)):
        return np.asarray(v, np.float32)
    if isinstance(v, np.ndarray) and v.dtype == np.float64:
        return v.astype(np.float32)
    if isinstance(v, np.ndarray) and v.dtype == np.int64:
        return v.astype(np.int32)
    if isinstance(v, jax.Array) and v.weak_type:
        return jnp.asarray(v, v.dtype)
    return v


def compiled_step(model) -> CompiledStep:
    cs = model.__dict__.get("_mj_compiled")
    if cs is None:
        cs = CompiledStep(model)
        model.__dict__["_mj_compiled"] = cs
    return cs


def _is_array(v):
    return isinstance(v, (np.ndarray, jax.Array))


class CompiledStep:
    """The jitted step of one model, with its capacities and trace counter."""

    def __init__(self, model):
        self.model = model
        seed = model._seed if isinstance(model._seed, (int, np.integer)) else model.random.getrandbits(31)
        # raw key data (uint32) in the state: a typed key array costs ~80 us of host
        # unflattening per call
        self.key = jax.random.key_data(jax.random.key(int(seed) % (2**32)))
        self.capacities: dict = {}
        self.trace_count = 0
        self.replays = 0
        self._fingerprint = None
        self._shared = None
        self._scalar_inputs: dict = {}  # attribute -> (the Python value set, its device scalar)
        self._ahead = None  # steps run ahead, not all served yet (see step_once)
        self._k = 1  # how many steps the next call of the stepping loop runs
        self._step_s = 0.0  # seconds a step of the last chunk took
        self._served_total = 0  # steps served from chunks
        self._last_look = None  # _served_total when the host last touched the columns
        self._interval = 0  # steps between its last two looks
        self._touched = False  # whether the host touched the columns since the last step
        self._inside = False  # in step(), run(), land(): touching the columns is no look
        self._cool = 0  # step() calls to run one step at a time after a chunk was cut short
        self._backoff = 4

    def invalidate(self):
        self._drop()
        self._fingerprint = None

    # -------------------------------------------------------------- state
    def _state_names(self):
        m = self.model
        names = set(m._mj_state_attrs)
        for k, v in m.__dict__.items():
            if not k.startswith("_") and _is_array(v):
                names.add(k)
        return sorted(n for n in names if n in m.__dict__)

    def split(self):
        """The model's mutable state as a pytree (tables' columns, model numbers, key)."""
        m = self.model
        for v in list(m.__dict__.values()):  # spaces that keep state on the model (layers)
            attach = getattr(type(v), "_mj_attach_state", None)
            if attach is not None:
                attach(v, m)
        tables = []
        for t in m._mj_tables.values():
            objects = [name for name, col in t.cols.items() if getattr(col, "dtype", None) == object]
            key = (t.host_version, t.n, tuple(objects))
            if t.static_key != key:  # object columns change only by host writes
                t.static_cols = {name: _static_kind(t, t.cols[name]) for name in objects}
                t.static_key = key
            cols = {name: col for name, col in t.cols.items() if name not in t.static_cols}
            tables.append({"alive": t.alive, "uid": t.uid, "cols": cols})
        attrs = {}
        for name in self._state_names():
            v = m.__dict__[name]
            if not (_is_array(v) or isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))):
                raise UnsupportedError(
                    f"model attribute `{name}` written in a step, holding a "
                    f"{type(v).__name__}", "keep numbers or numpy arrays in attributes a step writes",
                    location=user_location())
            cached = self._scalar_inputs.get(name)
            attrs[name] = cached[1] if cached is not None and cached[0] is v else _strong(v)
        spaces = {str(i): g.data_tables() for i, g in enumerate(_data_geoms(m))}
        return {"tables": tables, "attrs": attrs, "key": self.key, "spaces": spaces}

    def merge(self, state):
        """Bind a state (concrete or traced) back onto the model object."""
        self._merge_tables(state)
        for name, v in state["attrs"].items():
            self.model.__dict__[name] = v

    def _merge_tables(self, state):
        for t, ts in zip(self.model._mj_tables.values(), state["tables"]):
            t.alive = ts["alive"]
            t.uid = ts["uid"]
            for name, col in ts["cols"].items():
                t.cols[name] = col
        self.key = state["key"]

    def _statics(self, state_attrs, blind=()):
        """The model's other attributes, as the trace bakes them in. ``blind``: attributes
        known to become state (the step writes them): only their type counts."""
        return tuple(sorted((k, ("state", type(v).__name__) if k in blind and isinstance(v, _SIMPLE)
                             else _signature(v))
                            for k, v in self.model.__dict__.items()
                            if not k.startswith("_") and k not in state_attrs
                            and not _is_array(v) and k not in ("random", "rng", "step")))

    def _fingerprint_now(self):
        """What the program depends on."""
        m = self.model
        statics = self._statics(m._mj_state_attrs)
        tables = tuple((t.cls, t.cap, tuple(sorted((c, v.dtype, v.shape[1:]) for c, v in t._cols.items())),
                        tuple(sorted(t.strings)), tuple(sorted(t.enums.items())),
                        tuple(sorted((c, _signature(g)) for c, g in t.grids.items())))
                       for t in m._mj_tables.values())
        return (type(m), m._user_step.__func__, activation_of(m), claim_rounds(m), statics, tables,
                tuple(sorted(self.capacities.items())), tuple(sorted(m._mj_state_attrs)))

    # --------------------------------------------------------------- trace
    def _step_body(self, state, discovery):
        self = self._shared.holder if (not discovery and self._shared is not None) else self
        m = self.model
        key, step_key = jax.random.split(jax.random.wrap_key_data(state["key"]))
        state = dict(state, key=jax.random.key_data(key))
        ctx = TraceContext(m, step_key, discovery=discovery)
        ctx.capacities = self.capacities
        ctx.space_arrays = {g.uid: state["spaces"][str(i)] for i, g in enumerate(_data_geoms(m))}
        saved = self.split()
        ctx.concrete = saved
        saved_attrs = {k: v for k, v in m.__dict__.items() if not k.startswith("_mj") or k == "_mj_uid"}
        caps = {t: t.cap for t in m._mj_tables.values()}
        try:
            with ctx:
                self.merge(state)
                _open_nurseries(ctx, m)
                m.steps = m.steps + 1
                user_step = m._user_step
                fn = convert(user_step.__func__)
                fn(m)
                ctx.settle_births()
                _close_nurseries(ctx)
                # the spaces' neighbour tables are data the step only reads: pass them on
                # (split would give the host's own tables, baked into the program: the
                # stepping loop carries them to its next step)
                new_state = dict(self.split(), spaces=state["spaces"])
        except jax.errors.JAXTypeError as exc:
            raise _translate(exc) from exc
        finally:
            self._nursery_need = {t: n for t, n in ctx.nursery_need.items()}
            for t, cap in caps.items():
                t.cap = cap
            if not discovery:
                self.trace_count += 1
            self.merge(saved)
            for k in [k for k in m.__dict__ if not k.startswith("_mj")]:
                if k not in saved_attrs:
                    del m.__dict__[k]
            m.__dict__.update(saved_attrs)
        self._promoted = set(ctx.promoted)
        self._retyped = dict(ctx.retyped)
        # all signals in one int32 vector (one transfer per step); the layout goes in the
        # record of this trace (see _Shared.traces)
        names = sorted(ctx.flags)
        parts = [jnp.asarray(ctx.flags[k]).astype(jnp.int32).reshape(-1) for k in names]
        if not discovery and self._shared is not None:
            self._shared.reads |= ctx.model_reads
            self._shared.pending = {"layout": [(k, p.shape[0]) for k, p in zip(names, parts)],
                                    "targets": [_attr_path(m, dc) for dc, _ in ctx.collected]}
        packed = jnp.concatenate(parts) if parts else jnp.zeros(0, jnp.int32)
        aux = {"collected": [rec for _, rec in ctx.collected], "signals": packed}
        return new_state, aux

    def _build(self, n):
        def one(state):
            return self._step_body(state, discovery=False)

        def many(state):
            if n == 1:
                return one(state)

            def body(s, _):
                return one(s)
            return jax.lax.scan(body, state, None, length=n)

        shared = self._shared

        def with_scalars(state):
            new_state, aux = many(state)
            scalars, words = _pack_scalars(new_state["attrs"])
            shared.traces.append(dict(shared.pending, scalars=scalars))
            tag = jnp.asarray([len(shared.traces) - 1], jnp.int32)
            # the trace's tag, signals (every step of the chunk), scalars: one transfer
            return new_state, dict(aux, signals=jnp.concatenate([tag, aux["signals"].reshape(-1), words]))

        return jax.jit(with_scalars)

    def _discover(self):
        """Abstract trace(s) that promote model attributes written by the step to state
        and size the tables' nurseries (rows for agents born in a step)."""
        m = self.model
        self._all_retyped = {}
        for _ in range(8):
            state = self.split()
            new_state, aux = jax.eval_shape(lambda s: self._step_body(s, discovery=True), state)
            # small models that keep only 32-bit numbers and small arrays on the model step
            # through the stepping loop (see step_once); what they collect, a step's
            # records for each step of a chunk, counts towards the size
            attrs = new_state["attrs"].values()
            size = sum(v.size * v.dtype.itemsize for v in jax.tree.leaves(new_state)) + _AHEAD_MAX * sum(
                v.size * v.dtype.itemsize for v in jax.tree.leaves(aux["collected"]))
            self._ahead_ok = _AHEAD_MAX > 1 and all(v.dtype.itemsize <= 4 for v in attrs) and \
                sum(v.size for v in attrs) <= _ROW_WORDS and size <= _AHEAD_STATE_BYTES
            grown = [t for t, n in self._nursery_need.items() if n > t.nursery]
            for t in grown:
                t.nursery = self._nursery_need[t]
            for (table, name), spec in self._retyped.items():
                if isinstance(spec, tuple):
                    table.retype_list_column(name, spec[1], spec[2])
                elif spec == "text":
                    table.retype_text_column(name)
                elif spec == "float":
                    table.promote_column(name)
                else:
                    table.retype_none_column(name, spec.dtype, spec.shape)
                self._all_retyped[(table, name)] = spec
            new = self._promoted - set(m._mj_state_attrs)
            if not new and not self._retyped and not grown:
                return
            for name in new:
                if name not in m.__dict__:
                    raise UnsupportedError(
                        f"model attribute `{name}` first created inside `step`",
                        f"give it a value in `__init__` (e.g. `self.{name} = 0`)")
            m._mj_state_attrs.update(new)
        raise MesaJaxError("model state did not settle after 8 discovery traces")

    def _fn(self, n):
        """The program running ``n`` steps (a scan), or the stepping loop (``n="loop"``)."""
        self._sync_shared()
        shared = self._shared
        key = (n, self._read_statics())
        fn = shared.fns.get(key)
        if fn is None:
            fn = shared.fns[key] = self._build_loop() if n == "loop" else self._build(n)
        return fn

    def _sync_shared(self):
        """Find (or discover) what the model's current shape compiles to."""
        fp = self._fingerprint_now()
        if fp != self._fingerprint:
            known = _SHARED.get(fp)
            if known is None:
                known = self._alias_by_shape(fp)
            if known is not None and known.alias:
                # a model of the same shape: take over what discovery found for the first
                # (promoted attributes, neighbour tables read as data, None columns typed)
                self._adopt(known)
                fp = self._fingerprint_now()
                known = _SHARED.get(fp)
                if known is not None and known.alias:
                    known = None
            if known is None:
                fp_before = fp
                before = set(self.model._mj_state_attrs)
                self._shared = None
                self._discover()
                fp = self._fingerprint_now()
                known = _SHARED.get(fp)
                if known is None:
                    known = _Shared()
                    known.ahead_ok = self._ahead_ok
                _SHARED[fp] = known
                if fp_before != fp:
                    alias = _SHARED[fp_before] = self._alias()
                    self._remember_by_shape(alias, fp_before, before)
            self._shared = known
            self._fingerprint = fp
        self._shared.holder = self

    def _remember_by_shape(self, alias, fp_before, before):
        """Also file what discovery found under a key blind to the values of the attributes
        it promoted: another model differing only in those (a heading or count the step
        rewrites, set per seed in ``__init__``) adopts it instead of tracing again."""
        m = self.model
        promoted = frozenset(m._mj_state_attrs - before)
        _SHARED[self._by_shape(fp_before, promoted)] = alias
        _PROMOTED.setdefault(fp_before[:2], set()).add(promoted)

    def _by_shape(self, fp, promoted):
        # fp: (class, step, activation, rounds, statics, tables, capacities, state attrs)
        return ("by shape",) + fp[:4] + (self._statics(fp[7], promoted),) + fp[5:]

    def _alias_by_shape(self, fp):
        for promoted in _PROMOTED.get(fp[:2], ()):
            known = _SHARED.get(self._by_shape(fp, promoted))
            if known is not None:
                return known
        return None

    def _read_statics(self):
        """The contents of the host values the program's traces read from the model (a
        parameters list, dict or object): a program bakes them in, so another model of
        the same shape, or the same model after a host edit, needs its own."""
        d = self.model.__dict__
        state = self.model._mj_state_attrs
        return tuple((name, _content(d[name])) for name in sorted(self._shared.reads)
                     if name in d and name not in state and name not in _NOT_READ
                     and not name.startswith("_mj") and not _is_array(d[name]))

    def _alias(self):
        m = self.model
        alias = _Shared()
        alias.alias = True
        alias.state_attrs = set(m._mj_state_attrs)
        alias.space_keys = [set(g.used_tables) for g in _data_geoms(m)]
        tables = list(m._mj_tables.values())
        alias.nursery = [(i, t.nursery) for i, t in enumerate(tables)]
        alias.capacities = dict(self.capacities)  # what discovery's traces asked for
        alias.retyped = [(tables.index(t), name,
                          ("agents", tables.index(spec[1]), spec[2]) if isinstance(spec, tuple) else spec)
                         for (t, name), spec in self._all_retyped.items() if t in tables]
        return alias

    def _adopt(self, alias):
        m = self.model
        m._mj_state_attrs.update(alias.state_attrs)
        for k, v in alias.capacities.items():
            self.capacities[k] = max(self.capacities.get(k, v), v)
        for g, keys in zip(_data_geoms(m), alias.space_keys):
            g.used_tables |= keys
        tables = list(m._mj_tables.values())
        for i, rows in alias.nursery:
            if i < len(tables):
                tables[i].nursery = rows
        for i, name, spec in alias.retyped:
            if spec == "float" and i < len(tables) and name in tables[i].cols and \
                    tables[i].cols[name].dtype.kind in "iu":
                tables[i].promote_column(name)
            if i < len(tables) and getattr(tables[i].cols.get(name), "dtype", None) == object:
                if isinstance(spec, tuple):
                    tables[i].retype_list_column(name, tables[spec[1]], spec[2])
                elif spec == "text":
                    tables[i].retype_text_column(name)
                else:
                    tables[i].retype_none_column(name, spec.dtype, spec.shape)

    # ----------------------------------------------------------------- run
    def run(self, n_steps, chunk=None):
        """Run ``n_steps`` compiled steps (one call per chunk), replaying on overflow."""
        inside, self._inside = self._inside, True
        try:
            self._drop()
            remaining = int(n_steps)
            while remaining > 0:
                n = remaining if chunk is None else min(chunk, remaining)
                self._run_chunk(n)
                remaining -= n
        finally:
            self._inside = inside

    def run_until_stopped(self, max_steps=None):
        done = 0
        while self.model.running and (max_steps is None or done < max_steps):
            self.step_once()
            done += 1

    def _tables_to_device(self):
        for t in self.model._mj_tables.values():
            if not t.on_device:
                t.fit()
                t.to_device()

    def _run_chunk(self, n):
        m = self.model
        self._drop()
        self._tables_to_device()
        for _ in range(_MAX_REPLAYS):
            fn = self._fn(n)
            state = self.split()
            traces = self.trace_count
            new_state, aux = fn(state)
            if self.trace_count != traces:  # the trace found what it reads: key it by that
                self._shared.fns[(n, self._read_statics())] = fn
            packed = np.asarray(aux["signals"])  # the one sync of the chunk
            trace = self._shared.traces[packed[0]]
            cut = packed.size - len(trace["scalars"])
            packed, words = packed[1:cut], packed[cut:]
            packed_names = {k for k, _ in trace["scalars"]}
            wide = {k: v for k, v in new_state["attrs"].items()
                    if np.ndim(v) == 0 and k not in packed_names}  # 64-bit ones (x64 mode)
            wide = jax.device_get(wide) if wide else wide
            flags = _unpack(packed, trace["layout"])
            over = _over(flags)
            if not over:
                break
            self._grow_for(over, flags)
            self.replays += 1
        else:
            raise MesaJaxError(f"capacities kept overflowing after {_MAX_REPLAYS} replays: {over}")
        for name, v in flags.items():
            if name.startswith("error:"):
                v = np.asarray(v).reshape(-1, 3)  # one row per step of the chunk
                hit = np.flatnonzero(v[:, 0])
                if hit.size:  # the state before the chunk is kept
                    raise step_error(name[len("error:"):], v[hit[0], 1:])
        _add_diagnostics(m, flags)
        self.merge(new_state)
        for t in m._mj_tables.values():
            if t.nursery:  # newborns may sit in any row: none is left for add_rows
                t.n = t.cap
        scalars = _unpack_scalars(trace["scalars"], words)
        self._scalar_inputs = {}
        for k, v in scalars + [(k, np.asarray(v)) for k, v in wide.items()]:
            py = _to_py(v)
            m.__dict__[k] = py
            # the device scalar goes back in as the next step's input while the attribute
            # still holds this very object (no host-to-device copy per scalar per step)
            self._scalar_inputs[k] = (py, new_state["attrs"][k])
        m.__dict__["_mj_version"] = m.__dict__.get("_mj_version", 0) + 1
        for path, rec in zip(trace["targets"], aux["collected"]):
            _resolve_path(m, path)._append_device(rec, n if n > 1 else 1, m)

    # ------------------------------------------------------ step() and running ahead
    # Small models that keep only 32-bit numbers (and small arrays) on the model step
    # through one program, the stepping loop: ``(state, n) -> (state after up to n steps,
    # a row per step, what each step collected)``, a while loop that stops early after a step
    # that overflows a capacity, raises, or sets ``running`` to False. A row holds the
    # step's signals and the model's numbers after it. step() calls the loop for a chunk
    # of k = 1, 2, 4, ... 16 steps while the user keeps stepping and serves the next calls
    # from its outputs (numbers, errors, diagnostics, records) calling nothing. The agents'
    # columns stay where they were until the host reads or writes them: that catches them
    # up (``land``: the same program runs the steps served since, from the state the
    # columns hold, bit for bit what the chunk computed) and the chunk goes on serving.
    # A change the chunk did not see (a write to the agents or to the model's numbers, a
    # new parameter or shape) drops it; the next chunk is halved and a few steps run one
    # at a time. So results never depend on how the calls were grouped.

    def step_once(self):
        """One ``model.step()``."""
        inside, self._inside = self._inside, True  # (its own use of the columns is no look)
        try:
            self._step_once()
        finally:
            self._inside = inside

    def _step_once(self):
        a = self._ahead
        if a is not None:
            if a.served < a.good and self._undisturbed(a):
                self._serve(a)
                return
            self._drop()
        self._tables_to_device()  # (trims the tables' spare rows first: see AgentTable.fit)
        self._sync_shared()
        if not self._shared.ahead_ok:
            self._run_chunk(1)
            return
        for _ in range(_MAX_REPLAYS):
            a = self._launch()
            if a.good:
                self._serve(a)
                return
            flags = {k: v[:1] for k, v in a.flags.items()}  # its first step overflowed or raised
            over = _over(flags)
            if not over:
                for name, v in flags.items():
                    if name.startswith("error:") and v[0, 0]:
                        raise step_error(name[len("error:"):], v[0, 1:])
            self._grow_for(over, flags)
            self.replays += 1
        raise MesaJaxError(f"capacities kept overflowing after {_MAX_REPLAYS} replays: {over}")

    def _launch(self):
        """Call the stepping loop for the next chunk (the one sync of the chunk)."""
        self._tables_to_device()
        fn = self._fn("loop")
        if self._cool:
            self._cool -= 1
            k = 1
        else:
            k = self._k
        since = self._served_total - (self._last_look or 0)
        if self._interval and since > 2 * self._interval:
            self._interval = 0  # the host stopped looking
        if self._interval:  # the host looks every `_interval` steps: end chunks there
            k = min(k, self._interval - since % self._interval)
        state = self.split()
        traces = self.trace_count
        t0 = time.perf_counter()
        end, rows, recs = fn(state, np.int32(k))
        statics = self._read_statics()
        if self.trace_count != traces:  # the trace found what it reads: key it by that
            self._shared.fns[("loop", statics)] = fn
            t0 = None
        rows = np.asarray(rows)
        ran = int(np.count_nonzero(rows[:, 0]))
        if t0 is not None and ran:
            self._step_s = (time.perf_counter() - t0) / ran
        trace = self._shared.traces[rows[0, 0] - 1]
        size = sum(n for _, n in trace["layout"])
        flags = _unpack(rows[:ran, 1:1 + size], trace["layout"])
        bad = np.zeros(ran, bool)
        for name, v in flags.items():
            if name.startswith("error:"):
                bad |= v[:, 0] != 0
            elif ":" in name and not name.startswith("diag:"):
                bad |= np.any(v != 0, axis=1)
        a = _Ahead()
        a.base, a.end, a.fn, a.k, a.ran = state, end, fn, k, ran
        a.diag = {name: v for name, v in flags.items() if name.startswith("diag:")}
        a.flags = flags
        a.good = int(np.argmax(bad)) if bad.any() else ran
        a.words, a.trace, a.recs = rows[:ran, 1 + size:], trace, recs
        a.statics = statics
        return a

    def _serve(self, a):
        """Make the model the chunk's next step: its numbers, diagnostics, step count."""
        m = self.model
        i = a.served
        a.set, a.arrays = {}, {}
        for k, v in _unpack_numbers(a.trace["numbers"], a.words[i]):
            if v.ndim:  # an array: a copy tells an edit in place
                a.arrays[k] = v.copy()
            else:
                v = _to_py(v)
            a.set[k] = m.__dict__[k] = v
        if a.diag:
            _add_diagnostics(m, {k: v[i] for k, v in a.diag.items()})
        for path, recs in zip(a.trace["targets"], a.recs):  # what the step collected
            _resolve_path(m, path)._append_device(recs, 1, m, row=i)
        m.__dict__["_mj_version"] = m.__dict__.get("_mj_version", 0) + 1
        a.served = i + 1
        self._served_total += 1
        self._touched = False
        # the model's attributes as this step leaves them (held: their ids stay theirs)
        a.attrs = list(m.__dict__.items())
        self._ahead = a
        for t in m._mj_tables.values():
            t.ahead = self  # the host's first touch of the columns: see touch
        if a.served == a.ran and a.good == a.ran:  # all served: the chunk's end is the state
            self._drop()
            if self._step_s > _AHEAD_STEP_S:
                self._k = 1
            elif a.k == self._k:
                self._k = min(2 * self._k, _AHEAD_MAX)
                self._backoff = max(4, self._backoff // 2)
            return

    def _undisturbed(self, a):
        """Whether the model is as the last served step left it (reading the agents' columns
        lands the chunk; writing them after that changes them)."""
        m = self.model
        d = m.__dict__
        # an attribute set, added or removed; then what a program also depends on: how
        # the model activates agents, the contents of what the step reads from the host
        return (len(d) == len(a.attrs) and all(d.get(k) is v for k, v in a.attrs)
                and (a.base_step < a.served or self._tables_now() == a.placed)
                and all(np.array_equal(d[k], v) for k, v in a.arrays.items())
                and (activation_of(m), claim_rounds(m)) == self._fingerprint[2:4]
                and self._read_statics() == a.statics)

    def _tables_now(self):
        return [(id(t._alive), id(t._uid), [(k, id(v)) for k, v in t._cols.items()], t.host_version, t.n,
                 t.cap) for t in self.model._mj_tables.values()]

    def touch(self):
        """The host reads or writes the agents' columns (first time since a step)."""
        if self._inside or self._touched:
            return
        self._touched = True
        # how often the host looks: later chunks end where it will look next (no re-run)
        if self._last_look is not None:
            self._interval = self._served_total - self._last_look
        self._last_look = self._served_total
        self.land()

    def land(self):
        """Catch the agents' columns up with the last step served from the chunk."""
        a = self._ahead
        if a is None or a.base_step == a.served:
            return
        inside, self._inside = self._inside, True
        try:
            if a.served == a.ran:
                state = a.end
            else:  # the same program from the state the columns hold: bit for bit the chunk's
                state = a.fn(a.base, np.int32(a.served - a.base_step))[0]
            a.base, a.base_step = state, a.served
            self._merge_tables(state)
            for t in self.model._mj_tables.values():
                if t.nursery:  # newborns may sit in any row: none is left for add_rows
                    t.n = t.cap
        finally:
            self._inside = inside
        self._scalar_inputs = {k: (v, state["attrs"][k]) for k, v in a.set.items()}
        a.placed = self._tables_now()

    def _drop(self):
        """Stop serving from the chunk (all served, or the model changed under it)."""
        a = self._ahead
        if a is None:
            return
        self.land()
        self._ahead = None
        if a.served < a.good:  # cut short: run ahead less for a while
            self._k = max(1, self._k // 2)
            self._cool = self._backoff
            self._backoff = min(2 * self._backoff, 1024)

    def _build_loop(self):
        shared = self._shared

        def loop(state, n):
            holder = shared.holder
            traces = holder.trace_count  # a look at the step's outputs, not a program
            new_state, aux = jax.eval_shape(lambda s: self._step_body(s, discovery=False), state)
            holder.trace_count = traces
            width = 1 + aux["signals"].shape[0] + sum(v.size for v in new_state["attrs"].values())
            recs = jax.tree.map(lambda v: jnp.zeros((_AHEAD_MAX,) + v.shape, v.dtype), aux["collected"])
            tag = len(shared.traces) + 1
            record = {}

            def body(carry):
                i, s, rows, recs, _ = carry
                s, aux = self._step_body(s, discovery=False)
                recs = jax.tree.map(lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, i, 0),
                                    recs, aux["collected"])
                numbers, words = _pack_numbers(s["attrs"])
                record.update(shared.pending, numbers=numbers)
                stop = jnp.zeros((), bool)
                at = 0
                for name, size in record["layout"]:
                    v = aux["signals"][at:at + size]
                    if name.startswith("error:"):
                        stop = stop | (v[0] != 0)
                    elif ":" in name and not name.startswith("diag:"):
                        stop = stop | jnp.any(v != 0)
                    at += size
                running = s["attrs"].get("running", True)
                row = jnp.concatenate([jnp.full(1, tag, jnp.int32), aux["signals"], words])
                rows = jax.lax.dynamic_update_slice(rows, row[None], (i, 0))
                return i + 1, s, rows, recs, stop | ~jnp.asarray(running, bool)

            init = (jnp.int32(0), state, jnp.zeros((_AHEAD_MAX, width), jnp.int32), recs, jnp.zeros((), bool))
            _, end, rows, recs, _ = jax.lax.while_loop(lambda c: (c[0] < n) & ~c[4], body, init)
            shared.traces.append(record)
            return end, rows, recs

        return jax.jit(loop)

    def _grow_for(self, over, flags):
        """Grow what the signals in ``over`` ran out of (tables, capacities, list columns)."""
        m = self.model
        for k in over:
            if k.startswith("need:rows:"):  # more newborns than free rows: grow the table
                t = next(t for t in m._mj_tables.values() if t.cls.__qualname__ == k[10:])
                extra = int(np.max(flags[k]))
                t.to_host()
                t._grow(max(-(-t.cap * 3 // 2), t.cap + -(-extra * 5 // 4)))
                t.n = t.cap  # newborns may take any free row (add_rows then reuses free rows too)
                t.to_device()
                continue
            if k.startswith("need:"):  # a capacity asked for a size: 1.25x of it, and
                cap = k[len("need:"):]  # at least 1.5x the old one (fewer recompiles)
                old = self.capacities.get(cap, default_capacity(cap))
                asked = int(np.max(flags[k]))
                if cap.startswith("radius:"):  # a neighbourhood radius: exactly as asked
                    self.capacities[cap] = max(old + 1, asked)
                else:
                    self.capacities[cap] = max(-(-old * 3 // 2), -(-asked * 5 // 4))
                continue
            if k.startswith("listcol:"):  # a list-of-agents column: widen it (to
                for t in m._mj_tables.values():  # the lists' capacity when that was asked)
                    if k in t.list_flags:
                        col, slots = t.list_flags[k]
                        t.resize_list_column(col, slots or 2 * t.cols[col].shape[1])
                continue
            self.capacities[k] = self.capacities.get(k, default_capacity(k)) * 2


class _Ahead:
    """One call of the stepping loop: its rows, parsed, and how many steps were served."""

    served = 0  # steps served to step() calls
    base_step = 0  # the step the agents' columns are at (``base``: that state)
    placed = None  # the columns as they were caught up (see CompiledStep._undisturbed)
    set: dict = {}  # model attribute -> the value the last served step gave it
    attrs: list = []  # the model's attributes after the last served step
    arrays: dict = {}  # array attribute -> a copy of that value


def _over(flags):
    """The signals that ran out of a capacity (the step is replayed after growing it)."""
    return [k for k, v in flags.items() if ":" in k and k.split(":")[0] not in ("error", "diag")
            and np.any(v)]


def _add_diagnostics(m, flags):
    diag = m.__dict__.setdefault("_mj_diagnostics", {})
    for name, v in flags.items():
        if name.startswith("diag:"):
            diag[name[5:]] = diag.get(name[5:], 0) + int(np.sum(v))


def _to_py(v):
    return bool(v) if v.dtype == np.bool_ else (int(v) if v.dtype.kind in "iu" else float(v))


def _open_nurseries(ctx, m):
    """Append each table's nursery (dead rows) for agents born in this step."""
    for t in m._mj_tables.values():
        if t.nursery:
            cap0, rows = t.cap, t.nursery
            ctx.nursery[t] = (cap0, rows)
            t.alive = jnp.concatenate([t.alive, jnp.zeros(rows, bool)])
            t.uid = jnp.concatenate([t.uid, jnp.zeros(rows, t.uid.dtype)])
            for name, col in t.cols.items():
                if col.dtype != object:
                    fill = jnp.full((rows,) + col.shape[1:], t.fill_of(name, col.dtype), col.dtype)
                    t.cols[name] = jnp.concatenate([col, fill])
            t.cap = cap0 + rows


def _close_nurseries(ctx):
    """Drop the (settled, empty) nurseries again: the state keeps its shapes."""
    for t, (cap0, _) in ctx.nursery.items():
        t.alive, t.uid = t.alive[:cap0], t.uid[:cap0]
        t.cols = {k: (v[:cap0] if v.dtype != object else v) for k, v in t.cols.items()}
        t.cap = cap0


def _pack_scalars(attrs):
    """((name, dtype) layout, int32 vector) of the scalar attributes of at most 32 bits, bit
    for bit: they leave the step with the signals, one transfer instead of one each."""
    layout, words = [], []
    for k in sorted(attrs):
        v = jnp.asarray(attrs[k])
        if v.ndim == 0 and v.dtype.itemsize <= 4:
            layout.append((k, v.dtype))
            words.append(jax.lax.bitcast_convert_type(v, jnp.int32) if v.dtype.itemsize == 4
                         else v.astype(jnp.int32))
    return layout, jnp.stack(words) if words else jnp.zeros(0, jnp.int32)


def _pack_numbers(attrs):
    """((name, dtype, shape) layout, int32 vector) of the model's numbers and arrays (all
    of at most 32 bits: see _discover), bit for bit: a row of the stepping loop."""
    layout, words = [], []
    for k in sorted(attrs):
        v = jnp.asarray(attrs[k])
        layout.append((k, v.dtype, v.shape))
        words.append((jax.lax.bitcast_convert_type(v, jnp.int32) if v.dtype.itemsize == 4
                      else v.astype(jnp.int32)).reshape(-1))
    return layout, jnp.concatenate(words) if words else jnp.zeros(0, jnp.int32)


def _unpack_numbers(layout, words):
    """[(name, numpy value)] from ``_pack_numbers``' layout and a fetched row."""
    out, at = [], 0
    for k, dtype, shape in layout:
        size = math.prod(shape)
        w = words[at:at + size]
        v = w.view(dtype) if dtype.itemsize == 4 else w.astype(dtype)
        out.append((k, v.reshape(shape).copy() if shape else v.reshape(())))
        at += size
    return out


def _unpack_scalars(layout, words):
    """[(name, numpy scalar)] from ``_pack_scalars``' layout and the fetched vector."""
    return [(k, np.asarray(w, np.int32).view(dtype) if dtype.itemsize == 4 else np.asarray(w).astype(dtype))
            for (k, dtype), w in zip(layout, np.asarray(words))]


def _unpack(packed, layout):
    """{signal: int32 values [steps, size]} from the packed signal vector(s)."""
    packed = np.asarray(packed).reshape(-1, sum(size for _, size in layout) or 1)
    out, at = {}, 0
    for name, size in layout:
        out[name] = packed[:, at:at + size]
        at += size
    return out


def _data_geoms(model):
    """The model's spaces whose neighbour tables travel as data, in a stable order."""
    out = []
    for t in model._mj_tables.values():
        for geom in t.spaces.values():
            if geom.tables_as_data and geom not in out:
                out.append(geom)
    return out


def _attr_path(model, obj):
    for k, v in model.__dict__.items():
        if v is obj:
            return k
    raise UnsupportedError(
        "`collect` on a DataCollector that is not an attribute of the model",
        "keep the collector on the model (`self.datacollector = DataCollector(...)`)")


def _resolve_path(model, path):
    return model.__dict__[path]


def _translate(exc):
    """A JAX concretization error in user code, as an error naming the user's line."""
    tb = exc.__traceback__
    loc = None
    from .errors import _is_library_file

    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if not _is_library_file(fname):
            loc = f"{fname}:{tb.tb_lineno}"
        tb = tb.tb_next
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UnsupportedError(
        f"using a traced value where Python needs a concrete one ({type(exc).__name__}: {first})",
        "branch with `if`/`while` inside methods mesa_jax converts, avoid `int()`/`bool()`/"
        "indexing Python lists with traced values, and keep Python containers out of the step",
        location=loc)
