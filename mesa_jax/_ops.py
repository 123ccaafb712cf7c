"""The runtime that converted code calls (``__mj.<name>`` in converted source).

Every helper keeps plain Python semantics for plain Python values, so a condition that
is a Python bool costs nothing; traced values take the masked / vectorised path.
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
import os
import random as _pyrandom
import sys
from enum import Enum

import jax
import jax.numpy as jnp
import numpy as np

from ._collections import MultiList, TracedList, make_agent_handle, prefix_count
from ._masked import MaskedRows, reduce_rows
from ._context import UNDEF, current, is_traced, merge_signal, reduce_signal, signal_default
from ._random import mix32, substream
from ._strings import TracedStr, intern
from ._strings import wrap as str_wrap
from ._table import enum_code
from .errors import MesaJaxError, UnsupportedError, register_step_error, user_location

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_LIB_DIRS = tuple({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
                  | {os.path.dirname(os.__file__)})
_MAX_DEPTH = 32
_depth: dict = {}


def _agent_cls():
    from .agent import Agent

    return Agent


def _model_cls():
    from .model import Model

    return Model


def fail(construct, fix, location):
    raise UnsupportedError(construct, fix, location)


def ret_value(v):
    """The value a converted function returns (None when no path returned one)."""
    return None if v is UNDEF else v


def mark_converted(fn):
    fn.__mj_converted__ = True
    return fn


# ----------------------------------------------------------------- truthiness
def _has_tracer(x):
    return builtins.any(is_traced(leaf) for leaf in jax.tree.leaves(x))


def test(x):
    """A condition: a Python bool when static, a traced bool otherwise."""
    if isinstance(x, bool):
        return x
    if is_traced(x):
        return x if x.dtype == jnp.bool_ else x != 0
    if isinstance(x, (TracedList, MultiList)):
        return x.any()
    if isinstance(x, MaskedRows):
        raise UnsupportedError("the truth value of a per-agent array",
                               "use `.any()` / `.all()` or `len(a) > 0`")
    if current() is not None:
        lists = traced_lists(x)  # an AgentSet or cell collection inside a step
        if lists is not None:
            return MultiList(lists).any() if len(lists) > 1 else lists[0].any()
    Agent = _agent_cls()
    if isinstance(x, Agent):
        valid = x.__dict__.get("_valid", True)
        return valid if is_traced(valid) else bool(valid)
    if x is UNDEF:
        bool(x)
    valid = getattr(x, "_mj_valid", None)  # traced cells etc.
    if valid is not None:
        return valid if is_traced(valid) else bool(valid)
    if isinstance(x, jax.Array):
        return bool(x)
    return bool(x)


def is_static(c):
    return isinstance(c, bool)


def static_true(c):
    return c is True


def test_static(x, location):
    c = test(x)
    if not isinstance(c, bool):
        raise UnsupportedError(
            "a `while` loop on a traced condition that uses `break`, `continue`, `return` or "
            "`else`",
            "drop the jump: keep the exit condition in the `while` test itself "
            "(`while energy > 0 and not found:`)", location)
    return c


def push(c):
    current().frame.masks.append(jnp.asarray(c))


def pop():
    current().frame.masks.pop()


def not_(x):
    c = test(x)
    return (not c) if isinstance(c, bool) else jnp.logical_not(c)


def and_(*thunks):
    value = thunks[0]()
    for th in thunks[1:]:
        c = test(value)
        if isinstance(c, bool):
            if not c:
                return value
            value = th()
            continue
        nxt = th()
        value = _select_value(c, nxt, value)
    return value


def or_(*thunks):
    value = thunks[0]()
    for th in thunks[1:]:
        c = test(value)
        if isinstance(c, bool):
            if c:
                return value
            value = th()
            continue
        nxt = th()
        value = _select_value(c, value, nxt)
    return value


def _select_value(c, a, b):
    """``a if c else b`` for a traced ``c``: bools combine, numbers select."""
    if isinstance(a, (bool,)) or isinstance(b, bool) or (
        is_traced(a) and a.dtype == jnp.bool_) or (is_traced(b) and b.dtype == jnp.bool_):
        return jnp.where(c, test(a), test(b))
    return select(c, a, b, "<expression>")


def ifexp(c, then, other):
    c = test(c)
    if isinstance(c, bool):
        return then() if c else other()
    push(c)
    try:
        a = then()
    finally:
        pop()
    push(jnp.logical_not(c))
    try:
        b = other()
    finally:
        pop()
    return select(c, a, b, "<conditional expression>")


# ------------------------------------------------------------ locals merging
def snap(locs, names):
    return tuple(locs.get(n, UNDEF) for n in names)


def merge(c, ta, tb, names):
    if isinstance(c, bool):
        return ta if c else tb
    return tuple(select(c, a, b, n) for a, b, n in zip(ta, tb, names))


def select(c, a, b, name):
    """Merge the two values a variable has after the two paths of a traced branch."""
    if a is b:
        return a
    if a is UNDEF:
        return b
    if b is UNDEF:
        return a
    Agent = _agent_cls()
    if isinstance(a, Agent) and isinstance(b, Agent):
        if a._table is not b._table:
            raise UnsupportedError(
                f"variable `{name}` holding agents of two classes "
                f"({a._table.cls.__name__}, {b._table.cls.__name__}) after a traced branch",
                "keep one class per variable (use two variables)")
        row = jnp.where(c, a._row, b._row)
        valid = jnp.where(c, a.__dict__.get("_valid", True), b.__dict__.get("_valid", True))
        return make_agent_handle(a._table, row, valid)
    if isinstance(a, TracedList) and isinstance(b, TracedList):
        if a.table is not b.table or a.capacity != b.capacity:
            raise UnsupportedError(
                f"variable `{name}` holding two different kinds of list after a traced branch",
                "assign lists of the same kind and length in both branches")
        vals = jax.tree.map(lambda x, y: jnp.where(c, x, y), a.values, b.values)
        return TracedList(vals, jnp.where(c, a.mask, b.mask), a.table, a.wrap, False)
    if hasattr(a, "_mj_select"):
        return a._mj_select(c, b)
    if isinstance(b, TracedStr):
        return b._mj_select(jnp.logical_not(c), a)
    if isinstance(a, str) and isinstance(b, str) and a != b:  # text set on both paths
        return TracedStr(jnp.where(c, intern(a), intern(b)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        return type(a)(select(c, x, y, name) for x, y in zip(a, b))
    if a is None or b is None:
        raise UnsupportedError(
            f"variable `{name}` that is None on one path of a traced branch and a value on "
            f"the other (or a function that returns a value on one path only)",
            "give it a value on both paths (e.g. `0` or a default) before the `if`")
    if _numeric(a) and _numeric(b):
        return jnp.where(c, a, b)
    try:
        if a == b:
            return a
    except Exception:  # noqa: BLE001
        pass
    raise UnsupportedError(
        f"variable `{name}` holding different Python objects ({type(a).__name__}, "
        f"{type(b).__name__}) after a branch on a traced condition",
        "assign numbers, agents or cells in traced branches, or branch on a Python value")


def _numeric(x):
    return isinstance(x, (int, float, bool, np.number, np.ndarray, np.bool_)) or is_traced(x) or (
        isinstance(x, jax.Array))


# ---------------------------------------------------------------- identity
def is_(a, b):
    Agent = _agent_cls()
    if a is b:
        return True
    if isinstance(a, Agent) and isinstance(b, Agent):
        if a._table is not b._table:
            return False
        ra, rb = a._row, b._row
        if not (is_traced(ra) or is_traced(rb)):
            return False  # two handles of concrete rows are the same object when equal
        va, vb = a.__dict__.get("_valid", True), b.__dict__.get("_valid", True)
        return jnp.logical_and(ra == rb, jnp.logical_and(va, vb))
    if b is None and isinstance(a, Agent):
        v = a.__dict__.get("_valid", True)
        return jnp.logical_not(v) if is_traced(v) else (not v)
    if a is None and isinstance(b, Agent):
        return is_(b, a)
    if b is None and hasattr(a, "_mj_valid"):
        return jnp.logical_not(a._mj_valid)
    if hasattr(a, "_mj_same") and type(a) is type(b):
        return a._mj_same(b)
    if isinstance(b, Enum) and is_traced(a):
        return a == enum_code(b)  # an Enum attribute read in a step is its code
    if isinstance(a, Enum) and is_traced(b):
        return b == enum_code(a)
    if a is None or b is None:
        return False  # a traced number is never None
    if is_traced(a) or is_traced(b):
        raise UnsupportedError(
            f"`is` between a traced value and a {type(b if is_traced(a) else a).__name__}",
            "compare agents, cells, None or Enum members with `is`, numbers with `==`")
    return False


def any_zero(*divisors):
    """Whether any divisor is zero (a converted ``try/except ZeroDivisionError``)."""
    out = False
    for d in divisors:
        z = jnp.asarray(d) == 0 if is_traced(d) else (d == 0)
        out = (out or bool(z)) if not (is_traced(z) or is_traced(out)) else jnp.logical_or(out, z)
    return out


def eq(a, b):
    """``a == b`` in converted code (Enum members against traced codes)."""
    if isinstance(b, Enum) and is_traced(a):
        return a == enum_code(b)
    if isinstance(a, Enum) and is_traced(b):
        return b == enum_code(a)
    return a == b


def ne(a, b):
    r = eq(a, b)
    return (not r) if isinstance(r, bool) else jnp.logical_not(r)


def is_not(a, b):
    r = is_(a, b)
    return (not r) if isinstance(r, bool) else jnp.logical_not(r)


def in_(x, coll):
    if isinstance(coll, TracedList):
        Agent = _agent_cls()
        if coll.table is not None:
            if not isinstance(x, Agent) or x._table is not coll.table:
                return False
            return jnp.any(coll.mask & (coll.values == x._row) & x.__dict__.get("_valid", True))
        if coll.wrap is str_wrap:
            code = TracedStr.code_of(x)
            return False if code is None else jnp.any(coll.mask & (coll.values == code))
        if coll.wrap is not None and hasattr(x, "_mj_key"):
            return jnp.any(coll.mask & (coll.values == x._mj_key()))
        return jnp.any(coll.mask & (coll.values == x))
    if (is_traced(x) or isinstance(x, TracedStr)) and isinstance(coll, (list, tuple, set, range)):
        return jnp.any(jnp.asarray([x == v for v in coll]))
    return x in coll


# ------------------------------------------------------------------ calls
def _is_user_function(fn):
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    filename = os.path.abspath(code.co_filename)
    if filename.startswith(_PKG_DIR + os.sep):
        return False
    if f"{os.sep}mesa{os.sep}examples{os.sep}" in filename:
        return True
    if filename.startswith(_LIB_DIRS):
        return False
    return True


_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "add", "update",
             "discard", "setdefault", "popitem", "sort", "reverse", "__setitem__"}


def call(f, *args, **kwargs):
    """Call ``f`` from converted code: builtins overloaded, user functions converted,
    agent classes instantiated as births (``TraceContext.create_agent``)."""
    if isinstance(f, type) and issubclass(f, _agent_cls()) and current() is not None:
        return current().create_agent(f, args, kwargs)
    override = _BUILTINS.get(id(f)) if isinstance(f, (types_builtin, type)) else None
    if override is not None and override[0] is f:
        return override[1](*args, **kwargs)
    owner = getattr(f, "__self__", None)
    if owner is not None and isinstance(owner, (list, dict, set)) and getattr(f, "__name__", "") in _MUTATORS:
        _check_container_mutation(owner, f.__name__)
    if owner is not None and isinstance(owner, (_pyrandom.Random, np.random.Generator)) and current() is not None:
        # a host random generator kept somewhere (e.g. `self.grid.random`): drawing from it
        # while compiling would bake one number into the program; draw per step instead
        return _traced_random_method(owner, f.__name__)(*args, **kwargs)
    mod = getattr(f, "__module__", None) or ""
    if mod.startswith(("numpy", "math")) or f in _MATH:
        if _has_tracer((args, kwargs)) or builtins.any(isinstance(a, (TracedList, MaskedRows)) for a in args):
            return _numpy_call(f, args, kwargs)
        return f(*args, **kwargs)
    func = getattr(f, "__func__", None)
    if func is not None and owner is not None and _is_user_function(func):
        return _call_converted(func, (owner,) + args, kwargs)
    if isinstance(f, functools.partial) and _is_user_function(f.func):
        return _call_converted(f.func, f.args + args, {**f.keywords, **kwargs})
    if type(f).__name__ == "function" and _is_user_function(f):
        return _call_converted(f, args, kwargs)
    return f(*args, **kwargs)


def _traced_random_method(owner, name):
    from ._random import TracedGenerator, TracedRandom

    traced = TracedRandom() if isinstance(owner, _pyrandom.Random) else TracedGenerator()
    method = getattr(traced, name, None)
    if method is None:
        raise UnsupportedError(
            f"`{type(owner).__name__}.{name}` in a compiled step",
            "use one of random / randint / randrange / uniform / choice / choices / sample / "
            "shuffle (or numpy's random / integers / uniform / normal / choice)")
    return method


def _call_converted(fn, args, kwargs):
    from ._convert import convert

    conv = convert(fn)
    key = fn.__code__
    depth = _depth.get(key, 0)
    if depth >= _MAX_DEPTH:
        raise UnsupportedError(
            f"recursion in `{fn.__qualname__}` ({_MAX_DEPTH} nested calls while compiling; "
            f"both branches of a traced condition are traced, so recursion never ends)",
            "rewrite the recursion as a loop with a bounded number of iterations")
    _depth[key] = depth + 1
    try:
        return conv(*args, **kwargs)
    finally:
        _depth[key] = depth


def _check_container_mutation(owner, method):
    ctx = current()
    if ctx is None:
        return
    if ctx.frame.branch_masked:
        raise UnsupportedError(
            f"`{type(owner).__name__}.{method}` inside a branch on a traced condition (both "
            f"branches run while compiling, so the {type(owner).__name__} would change on "
            f"both paths)",
            "build the list with a comprehension and a filter "
            "(`[a for a in cell.agents if a.wealth > 0]`), or count with a traced number")
    model = ctx.model
    for name, value in vars(model).items():
        if value is owner:
            raise UnsupportedError(
                f"`self.{name}.{method}(...)` on a Python {type(owner).__name__} kept on the "
                f"model (a compiled step runs its Python once, while compiling)",
                f"record values with a DataCollector, or keep a numeric array on the model "
                f"(`self.{name} = np.zeros(n)`) and write into it")


def ga(obj, name):
    """Attribute read; user-defined properties run converted."""
    ctx = current()
    if ctx is not None and obj is ctx.model:
        ctx.model_reads.add(name)
    for klass in type(obj).__mro__:
        d = klass.__dict__
        if name in d:
            attr = d[name]
            if isinstance(attr, property) and attr.fget is not None and _is_user_function(attr.fget):
                return _call_converted(attr.fget, (obj,), {})
            break
    return getattr(obj, name)


_AUG = {"Add": operator.add, "Sub": operator.sub, "Mult": operator.mul, "Div": operator.truediv,
        "FloorDiv": operator.floordiv, "Mod": operator.mod, "Pow": operator.pow,
        "BitAnd": operator.and_, "BitOr": operator.or_, "BitXor": operator.xor,
        "LShift": operator.lshift, "RShift": operator.rshift, "MatMult": operator.matmul}


def augattr(obj, name, op, value):
    """``obj.name <op>= value``; ``+=``/``-=`` on other agents or the model add up."""
    ctx = current()
    hook = getattr(type(obj), "_mj_augattr", None)
    if ctx is not None and hook is not None:  # e.g. cells: `cell.sugar -= 1` adds up
        return hook(obj, name, op, value)
    Agent, Model = _agent_cls(), _model_cls()
    if ctx is not None and op in ("Add", "Sub") and isinstance(obj, (Agent, Model)) \
            and not isinstance(getattr(type(obj), name, None), property):
        delta = value if op == "Add" else -jnp.asarray(value)
        if isinstance(obj, Agent):
            ctx.add_attr(obj, name, delta)
        else:
            ctx.add_model_attr(obj, name, delta)
        return
    setattr(obj, name, _AUG[op](ga(obj, name), value))


# ------------------------------------------------------------- comprehensions
def _element_out(out, what):
    """Flatten a comprehension result element: agents become (row, valid)."""
    Agent = _agent_cls()
    if isinstance(out, Agent):
        return ("agent", out._table), (jnp.asarray(out._row), jnp.asarray(out.__dict__.get("_valid", True)))
    if hasattr(out, "_mj_flatten"):
        wrap, leaves = out._mj_flatten()
        return ("wrap", wrap), leaves
    if isinstance(out, TracedList):
        raise UnsupportedError(f"a {what} whose elements are lists", "flatten it into one comprehension")
    return ("value", None), out


def _vectorised(lists, fn, cond, star, what):
    """Run ``fn``/``cond`` vmapped over the elements of traced lists; concatenate."""
    ctx = current()
    frame = ctx.frame
    results = []
    for lst in lists:
        key = frame.next_bits()
        meta = []
        own_before = dict(frame.own) if frame.own is not None else None
        n_eff = len(frame.effects)

        def one(vals, ok, i, lst=lst, meta=meta, key=key):
            saved = (frame.rng, frame.draws, frame.flags)
            frame.rng, frame.draws, frame.flags = substream(key, i), 0, {}
            frame.masks.append(ok)
            ctx.in_comprehension += 1
            try:
                if lst.table is not None:
                    e = make_agent_handle(lst.table, vals, ok)
                elif lst.wrap is not None:
                    e = lst.wrap(vals, ok)
                else:
                    e = vals
                args = tuple(e) if star else (e,)
                out = fn(*args)
                c = True if cond is None else test(cond(*args))
                signals = frame.flags
            finally:
                ctx.in_comprehension -= 1
                frame.masks.pop()
                frame.rng, frame.draws, frame.flags = saved
            kind, leaves = _element_out(out, what)
            valid = jnp.asarray(True)
            if kind[0] == "agent":
                leaves, valid = leaves
            meta.append((kind, c is False))
            return leaves, jnp.logical_and(jnp.asarray(c), valid), signals

        idx = jnp.arange(lst.capacity)
        leaves, c, signals = jax.vmap(one)(lst.values, lst.mask, idx)
        for name, v in signals.items():
            ctx.signal(name, reduce_signal(name, v))
        if (frame.own is not None and builtins.any(frame.own[k] is not v for k, v in own_before.items())) \
                or len(frame.effects) != n_eff:
            raise UnsupportedError(f"an assignment inside a {what}",
                                   "assign in a `for` loop, or compute values in the comprehension "
                                   "and assign after it")
        kind, never = meta[0]
        if never and (results or lst is not lists[-1]):
            continue  # the filter is False for this whole list (`isinstance(a, Cop)`)
        mask = lst.mask & c
        if kind[0] == "agent":
            results.append(TracedList(leaves, mask, table=kind[1]))
        elif kind[0] == "wrap":
            results.append(TracedList(leaves, mask, wrap=kind[1]))
        else:
            results.append(TracedList(leaves, mask))
    if len(results) == 1:
        return results[0]
    if builtins.all(r.table is not None for r in results):
        return MultiList(results)
    return concat_lists(results, what)


def concat_lists(results, what):
    first = results[0]
    if builtins.any(r.table is not first.table or r.wrap is not first.wrap for r in results):
        raise UnsupportedError(f"a {what} mixing agents of several classes",
                               "filter by class first (`isinstance(a, Sheep)`) or use "
                               "`model.agents_by_type[Sheep]`")
    vals = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[r.values for r in results])
    return TracedList(vals, jnp.concatenate([r.mask for r in results]), first.table, first.wrap)


def traced_lists(iterable):
    """The traced lists behind an iterable, or None for a plain Python iterable."""
    if isinstance(iterable, TracedList):
        return [iterable]
    fn = getattr(iterable, "_mj_traced_lists", None)
    if fn is not None:
        return fn()
    return None


def star_list(*parts):
    """``[*xs, a, *ys]``: a Python list, or (a traced list among the starred parts) one
    traced list with the plain elements as one-slot lists."""
    if not builtins.any(starred and traced_lists(v) is not None for starred, v in parts):
        out = []
        for starred, v in parts:
            if starred:
                out.extend(v)
            else:
                out.append(v)
        return out
    Agent = _agent_cls()
    lists = []
    for starred, v in parts:
        if starred:
            inner = traced_lists(v)
            if inner is None:
                v = list(v)
                if not v:
                    continue
                inner = [star_list(*[(False, x) for x in v])]
            lists.extend(inner)
        elif isinstance(v, Agent):
            valid = jnp.asarray(v.__dict__.get("_valid", True))
            lists.append(TracedList(jnp.asarray(v._row, jnp.int32)[None], valid[None], table=v._table))
        else:
            lists.append(TracedList(jnp.asarray(v)[None], jnp.ones(1, bool), compact=True))
    if len(lists) == 1:
        return lists[0]
    if builtins.all(x.table is not None for x in lists) and len({id(x.table) for x in lists}) > 1:
        return MultiList(lists)
    return concat_lists(lists, "list display")


def extend_list(lst, items):
    """``lst`` extended by a comprehension's result (a loop of appends, rewritten): the
    same Python list when both are Python lists, else one traced list."""
    if traced_lists(items) is None and traced_lists(lst) is None:
        lst.extend(items)
        return lst
    if isinstance(lst, list) and not lst:
        return items
    return star_list((True, lst), (True, items))


_KEY_ERROR = register_step_error(
    "key", lambda p: KeyError("a traced key that is not in the dict (looked up in a compiled step)"))


def getitem(obj, key):
    """``obj[key]``; a host dict looked up by a traced key (text codes, numbers, tuples of
    them) selects among its values, all compared at once; a key it lacks is Python's
    KeyError, raised after the step."""
    if isinstance(obj, dict) and _is_traced_key(key):
        if not obj:
            raise KeyError(key)
        values = list(obj.values())
        text = builtins.all(isinstance(v, str) for v in values)
        if not text and not builtins.all(_numeric(v) for v in values):
            raise UnsupportedError(
                "looking up a dict of non-numbers with a traced key",
                "keep numbers (or text) as the values, or branch on the key with `if`")
        hits = [jnp.asarray(_key_eq(key, k), bool) for k in obj]
        current().report_error(_KEY_ERROR, jnp.logical_not(functools.reduce(jnp.logical_or, hits)))
        if text:
            return TracedStr(jnp.select(hits, [jnp.int32(intern(v)) for v in values]))
        return jnp.select(hits, [jnp.asarray(v) for v in values])
    return obj[key]


def _is_traced_key(key):
    if isinstance(key, tuple):
        return builtins.any(_is_traced_key(k) for k in key)
    return is_traced(key) or isinstance(key, TracedStr)


def _key_eq(key, k):
    if isinstance(key, tuple):
        if not isinstance(k, tuple) or len(k) != len(key):
            return False
        return functools.reduce(jnp.logical_and, [jnp.asarray(_key_eq(a, b)) for a, b in zip(key, k)],
                                jnp.asarray(True))
    if is_traced(key) and not _numeric(k):
        return False
    return eq(key, k)


def comp(iterable, fn, cond, star, kind):
    what = "list comprehension" if kind == "list" else "generator expression"
    lists = traced_lists(iterable)
    if lists is not None:
        return _vectorised(lists, fn, cond, star, what)
    out, conds = [], []
    for e in iterable:
        args = tuple(e) if star else (e,)
        c = True if cond is None else test(cond(*args))
        if c is False:
            continue
        out.append(fn(*args))
        conds.append(c)
    if builtins.all(c is True for c in conds):
        return out
    leaves = [_element_out(o, what) for o in out]
    kinds = {k for k, _ in leaves}
    if len(kinds) != 1:
        raise UnsupportedError(f"a {what} with elements of different kinds and a traced filter",
                               "keep one kind of element")
    k = kinds.pop()
    mask = jnp.stack([jnp.asarray(c) for c in conds])
    if k[0] == "agent":
        rows = jnp.stack([l[0] for _, l in leaves])
        valid = jnp.stack([l[1] for _, l in leaves])
        return TracedList(rows, mask & valid, table=k[1])
    vals = jax.tree.map(lambda *xs: jnp.stack(xs), *[l for _, l in leaves])
    return TracedList(vals, mask, wrap=k[1] if k[0] == "wrap" else None)


_UNROLL_LIMIT = 64


def iter_(iterable, has_break, location):
    """Items for a converted ``for``: (validity, element) pairs."""
    lists = traced_lists(iterable)
    if lists is None:
        for e in iterable:
            yield True, e
        return
    if has_break:
        raise UnsupportedError("`break`/`continue` in a `for` over a traced collection",
                               "use a comprehension with a filter, or a flag that guards the "
                               "rest of the loop body (`if not done:`)", location)
    for lst in lists:
        if lst.capacity > _UNROLL_LIMIT:
            raise UnsupportedError(
                f"a `for` loop over a traced collection of up to {lst.capacity} elements "
                f"(loops are unrolled; the limit is {_UNROLL_LIMIT})",
                "act on every agent with `agents.do(\"method\")` / `agents.shuffle_do(...)`, or "
                "use a comprehension (`sum(a.wealth for a in agents)`)", location)
        for i in range(lst.capacity):
            yield lst.mask[i], lst.element(i)


def for_each(body, iterable, location, n_sums=0):
    """A ``for`` loop whose iterations are independent (see ``_convert._mark_vector_loops``).

    A Python iterable runs as a plain loop. A traced collection runs the body once, vmapped
    over its slots (masked by validity): writes to agents and ``+=`` on model attributes
    become effects, applied together after the loop, as for an agent call. With
    ``n_sums`` accumulators the body returns its increments; their sums over the
    iterations (valid slots only) are returned.
    """
    lists = traced_lists(iterable)
    sums = [0] * n_sums
    if lists is None:
        for item in iterable:
            out = body(item)
            sums = [s + d for s, d in zip(sums, out or ())]
        return tuple(sums)
    ctx = current()
    frame = ctx.frame
    for lst in lists:
        key = frame.next_bits()
        own_before = dict(frame.own) if frame.own is not None else None
        metas = []

        def one(i, lst=lst, key=key, metas=metas):
            saved = (frame.rng, frame.draws, frame.flags, frame.effects, frame.defer)
            frame.rng, frame.draws, frame.flags, frame.effects, frame.defer = substream(key, i), 0, {}, [], True
            frame.masks.append(lst.mask[i])
            ctx.loop_slots.append((i, lst.capacity))
            try:
                out = body(lst.element(i))
                effects, signals = frame.effects, frame.flags
            finally:
                ctx.loop_slots.pop()
                frame.masks.pop()
                frame.rng, frame.draws, frame.flags, frame.effects, frame.defer = saved
            metas.append([(e.kind, e.table, e.attr) for e in effects])
            eff = [(jnp.asarray(0 if e.rows is None else e.rows), jnp.asarray(e.values),
                    jnp.asarray(True if e.mask is None else e.mask)) for e in effects]
            deltas = [jnp.where(lst.mask[i], jnp.asarray(d), jnp.zeros_like(jnp.asarray(d)))
                      for d in (out or ())]
            return eff, signals, deltas

        eff, signals, deltas = jax.vmap(one)(jnp.arange(lst.capacity))
        sums = [s + jnp.sum(d, axis=0) for s, d in zip(sums, deltas)]
        if frame.own is not None and builtins.any(frame.own[k] is not v for k, v in own_before.items()):
            raise UnsupportedError("an assignment to the acting agent inside a `for` loop over a "
                                   "traced collection", "accumulate in the loop, assign after it",
                                   location)
        for name, v in signals.items():
            ctx.signal(name, reduce_signal(name, v))
        from ._context import Effect

        effects = [Effect(k, t, a, r, v, m) for (k, t, a), (r, v, m) in zip(metas[0], eff)]
        if frame.agent is None:
            ctx.apply_effects(effects, frame)
            ctx.settle_births()
            ctx.invalidate_indexes()
        else:
            frame.effects.extend(effects)
    return tuple(sums)


def _zip(*iterables, strict=False):
    """``zip`` over traced collections: the k-th valid elements of each, side by side."""
    if not builtins.any(traced_lists(x) is not None or isinstance(x, MaskedRows) or is_traced(x)
                        for x in iterables):
        return builtins.zip(*iterables, strict=strict)
    parts = []
    for x in iterables:
        lists = traced_lists(x)
        if lists is not None:
            lst = lists[0] if len(lists) == 1 else concat_lists(lists, "zip")
        elif isinstance(x, MaskedRows):
            lst = TracedList(x.data, x.mask)
        elif isinstance(x, range):
            lst = TracedList(jnp.arange(x.start, x.stop, x.step, dtype=jnp.int32),
                             jnp.ones(len(x), bool), compact=True)
        else:
            arr = jnp.asarray(x)
            lst = TracedList(arr, jnp.ones(arr.shape[0], bool), compact=True)
        parts.append(lst.compacted())
    cap = builtins.min(p.capacity for p in parts)
    n = functools.reduce(jnp.minimum, [p.count() for p in parts])
    values = tuple(jax.tree.map(lambda a: a[:cap], p.values) for p in parts)
    kinds = [(p.table, p.wrap) for p in parts]

    def wrap(vals, ok):
        out = []
        for (table, inner_wrap), v in builtins.zip(kinds, vals):
            if table is not None:
                out.append(make_agent_handle(table, v, ok))
            elif inner_wrap is not None:
                out.append(inner_wrap(v, ok))
            else:
                out.append(v)
        return tuple(out)

    return TracedList(values, jnp.arange(cap) < n, wrap=wrap, compact=True)


def while_(cond_fn, body_fn, state, names, location):
    """A converted ``while``: a Python loop while the test is static, else lax.while_loop."""
    while True:
        c = test(cond_fn(state))
        if isinstance(c, bool):
            if not c:
                return state
            state = body_fn(state)
            continue
        return _traced_while(cond_fn, body_fn, state, names, location)


class _NewSignals(Exception):
    def __init__(self, names):
        super().__init__(sorted(names))
        self.names = set(names)


def _traced_while(cond_fn, body_fn, state, names, location):
    ctx = current()
    frame = ctx.frame
    for n, v in zip(names, state):
        if v is UNDEF:
            raise UnsupportedError(
                f"variable `{n}` first assigned inside a `while` loop on a traced condition",
                f"assign `{n}` before the loop (e.g. `{n} = 0`)", location)
    outer_mask = frame.mask
    own_keys = sorted(frame.own) if frame.own is not None else []
    saved_own = dict(frame.own) if frame.own is not None else None
    saved_rng = frame.rng

    def install(carry):
        s, own, key, _ = carry
        if frame.own is not None:
            frame.own.update(dict(zip(own_keys, own)))
        frame.rng = key
        return s

    def pack(s, signals):
        own = tuple(frame.own[k] for k in own_keys) if frame.own is not None else ()
        # re-key the stream per iteration: draws in the body are counted at trace time
        return (tuple(jnp.asarray(x) for x in s), own, mix32(frame.rng + jnp.uint32(1)), signals)

    def run(sig_names):
        def cf(carry):
            outer, frame.flags = frame.flags, {}
            try:
                c = jnp.asarray(test(cond_fn(install(carry))))
                if frame.flags:
                    raise UnsupportedError("a `while` condition that draws or queries a space",
                                           "compute it in the loop body into a variable", location)
            finally:
                frame.flags = outer
            return c if outer_mask is None else jnp.logical_and(c, outer_mask)

        def bf(carry):
            n_eff, writes = len(frame.effects), ctx.write_count
            outer, frame.flags = frame.flags, {}
            try:
                s = body_fn(install(carry))
                inner = frame.flags
            finally:
                frame.flags = outer
            if len(frame.effects) != n_eff or ctx.write_count != writes:
                raise UnsupportedError(
                    "a write to another agent or to the model inside a `while` loop on a traced "
                    "condition", "compute the value in the loop and write it once after the loop",
                    location)
            if set(inner) - set(sig_names):
                raise _NewSignals(set(inner))
            sigs = {n: merge_signal(n, carry[3][n], inner[n]) if n in inner else carry[3][n]
                    for n in sig_names}
            return pack(s, sigs)

        return jax.lax.while_loop(cf, bf, pack(state, {n: signal_default(n) for n in sig_names}))

    sig_names = []
    for _ in range(8):
        try:
            out = run(sig_names)
            break
        except _NewSignals as exc:  # trace again, carrying the signals the body raised
            if saved_own is not None:
                frame.own.clear()
                frame.own.update(saved_own)
            frame.rng = saved_rng
            sig_names = sorted(set(sig_names) | exc.names)
        except TypeError as exc:
            raise UnsupportedError(
                f"a `while` loop on a traced condition whose variables change type ({exc})",
                "give the loop variables their final type before the loop (e.g. `x = 0.0`)",
                location) from exc
    else:
        raise MesaJaxError("internal: while-loop signals did not settle")
    for n, v in out[3].items():
        ctx.signal(n, v)
    return tuple(install(out))


# ---------------------------------------------------------------- builtins
def _masked_fill(lst, fill_kind, what):
    v = lst.numeric(what)
    dt = v.dtype
    if fill_kind == "max":
        fill = jnp.inf if jnp.issubdtype(dt, jnp.floating) else jnp.iinfo(dt).max
    else:
        fill = -jnp.inf if jnp.issubdtype(dt, jnp.floating) else jnp.iinfo(dt).min
    m = lst.mask.reshape(lst.mask.shape + (1,) * (v.ndim - 1))
    return jnp.where(m, v, jnp.asarray(fill, dt))


def _len(x):
    if isinstance(x, (TracedList, MaskedRows)):
        return x.count()
    lists = traced_lists(x)
    if lists is not None:
        return builtins.sum(l.count() for l in lists)
    return len(x)


def _sum(x, start=0):
    lists = traced_lists(x)
    if lists is not None:
        total = start
        for lst in lists:
            v = lst.numeric("sum")
            m = lst.mask.reshape(lst.mask.shape + (1,) * (v.ndim - 1))
            total = total + reduce_rows(jnp.sum, jnp.where(m, v, jnp.zeros_like(v)))
        return total
    return builtins.sum(x, start)


def _minmax(name, *args, key=None, **kw):
    red = jnp.min if name == "min" else jnp.max
    arg = jnp.argmin if name == "min" else jnp.argmax
    pyf = builtins.min if name == "min" else builtins.max
    if len(args) == 1:
        lists = traced_lists(args[0])
        if lists is not None:
            lst = lists[0] if len(lists) == 1 else concat_lists(lists, name)
            if key is not None:
                keys = comp(lst, key, None, False, "gen")
                filled = _masked_fill(keys, "max" if name == "min" else "min", name)
                return lst.element(arg(filled), lst.any())
            return red(_masked_fill(lst, "max" if name == "min" else "min", name), axis=0)
        if key is None and not kw and _has_tracer(list(args[0]) if isinstance(args[0], (list, tuple)) else ()):
            return functools.reduce(jnp.minimum if name == "min" else jnp.maximum, args[0])
        return pyf(*args, key=key, **kw) if key is not None else pyf(*args, **kw)
    if key is None and _has_tracer(args):
        return functools.reduce(jnp.minimum if name == "min" else jnp.maximum, args)
    return pyf(*args, key=key, **kw) if key is not None else pyf(*args, **kw)


def _sorted(x, key=None, reverse=False):
    lists = traced_lists(x)
    if lists is None:
        return builtins.sorted(x, key=key, reverse=reverse)
    lst = lists[0] if len(lists) == 1 else concat_lists(lists, "sorted")
    if key is None:
        k = _masked_fill(lst, "min" if reverse else "max", "sorted")
    else:
        k = _masked_fill(comp(lst, key, None, False, "gen"), "min" if reverse else "max", "sorted")
    if key is None and lst.table is None and lst.wrap is None and k.ndim == 1:
        vals = _counting_sort(lst) if jnp.issubdtype(k.dtype, jnp.integer) else None
        if vals is None:
            vals = jnp.sort(k)
        if reverse:
            vals = vals[::-1]
        return TracedList(vals, jnp.arange(lst.capacity) < lst.count(), compact=True)
    order = jnp.argsort(-k if reverse else k, stable=True)
    vals = jax.tree.map(lambda a: a[order], lst.values)
    return TracedList(vals, jnp.arange(lst.capacity) < lst.count(), lst.table, lst.wrap, compact=True)


_SORT_SPAN = 256  # first span of values a counting sort covers (grown and replayed)


def _counting_sort(lst):
    """Small-range integers sorted by counting (a histogram and a repeat), valid values
    first and invalid slots after them; None where a comparison sort is cheaper.

    The span of values it covers is a host capacity named after the call site; a wider
    span raises a flag and the step is replayed with the span doubled (past four times
    the list's length the comparison sort is used).
    """
    ctx = current()
    if ctx is None or ctx.frame.agent is not None or lst.capacity < 1024:
        return None
    name = f"sortspan:{user_location()}"
    span = ctx.capacities.get(name, _SORT_SPAN)
    if span > 4 * lst.capacity:
        return None
    vals = jnp.asarray(lst.values)
    lo = jnp.min(jnp.where(lst.mask, vals, jnp.iinfo(vals.dtype).max))
    hi = jnp.max(jnp.where(lst.mask, vals, jnp.iinfo(vals.dtype).min))
    ctx.flag(name, lst.any() & (hi - lo >= span))
    bins = jnp.where(lst.mask, jnp.clip(vals - lo, 0, span - 1), span)
    counts = jnp.zeros(span + 1, jnp.int32).at[bins].add(1)
    out = jnp.repeat(jnp.arange(span + 1, dtype=vals.dtype), counts, total_repeat_length=lst.capacity)
    return jnp.where(jnp.arange(lst.capacity) < lst.count(), out + lo, 0)


def _any(x):
    lists = traced_lists(x)
    if lists is None:
        vals = list(x)
        if _has_tracer(vals):
            return jnp.any(jnp.asarray([test(v) for v in vals]))
        return builtins.any(vals)
    return jnp.any(jnp.stack([jnp.any(l.mask & _truth(l)) for l in lists]))


def _all(x):
    lists = traced_lists(x)
    if lists is None:
        vals = list(x)
        if _has_tracer(vals):
            return jnp.all(jnp.asarray([test(v) for v in vals]))
        return builtins.all(vals)
    return jnp.all(jnp.stack([jnp.all(~l.mask | _truth(l)) for l in lists]))


def _truth(lst):
    if lst.table is not None or lst.wrap is not None:
        return jnp.ones_like(lst.mask)
    v = lst.values
    return v if v.dtype == jnp.bool_ else v != 0


def _enumerate(x, start=0):
    lists = traced_lists(x)
    if lists is None:
        return builtins.enumerate(x, start)
    lst = lists[0] if len(lists) == 1 else concat_lists(lists, "enumerate")
    rank = prefix_count(lst.mask) - 1 + start
    inner_table, inner_wrap = lst.table, lst.wrap

    def wrap(v, ok):
        i, inner = v
        if inner_table is not None:
            return (i, make_agent_handle(inner_table, inner, ok))
        if inner_wrap is not None:
            return (i, inner_wrap(inner, ok))
        return (i, inner)

    return TracedList((rank, lst.values), lst.mask, wrap=wrap, compact=lst.compact)


def _list(x=()):
    if isinstance(x, TracedList):
        return x
    lists = traced_lists(x)
    if lists is not None:
        return lists[0] if len(lists) == 1 else concat_lists(lists, "list")
    return list(x)


def _range(*args):
    if _has_tracer(args):
        raise UnsupportedError("`range()` with a traced bound",
                               "loop over a Python int bound (a model constant), and skip "
                               "iterations with `if i < n:`")
    return range(*args)


def _conv(pytype, jtype):
    def f(x=0, *rest):
        if is_traced(x):
            if pytype is bool:
                return test(x)
            if pytype is int and jnp.issubdtype(x.dtype, jnp.floating):
                return jnp.trunc(x).astype(jtype)
            return x.astype(jtype)
        if isinstance(x, TracedList):
            raise UnsupportedError(f"`{pytype.__name__}()` of a traced list", "reduce it first (`sum`, `len`)")
        return pytype(x, *rest)
    return f


def _abs(x):
    return jnp.abs(x) if is_traced(x) else builtins.abs(x)


def _round(x, ndigits=None):
    if is_traced(x):
        return jnp.round(x, ndigits or 0) if ndigits else jnp.round(x).astype(jnp.int32)
    return builtins.round(x, ndigits)


def _isinstance(obj, classes):
    return builtins.isinstance(obj, classes)


types_builtin = type(len)
_BUILTINS = {id(f): (f, g) for f, g in [
    (len, _len), (sum, _sum), (min, functools.partial(_minmax, "min")),
    (max, functools.partial(_minmax, "max")), (sorted, _sorted), (any, _any), (all, _all),
    (enumerate, _enumerate), (zip, _zip), (list, _list), (tuple, _list), (range, _range),
    (int, _conv(int, jnp.int32)), (float, _conv(float, jnp.float32)), (bool, _conv(bool, jnp.bool_)),
    (abs, _abs), (round, _round), (isinstance, _isinstance),
]}

_MATH = {math.sqrt, math.exp, math.log, math.sin, math.cos, math.tan, math.atan2, math.floor,
         math.ceil, math.hypot, math.fabs, math.pow}
_MATH_TO_JNP = {math.sqrt: jnp.sqrt, math.exp: jnp.exp, math.log: jnp.log, math.sin: jnp.sin,
                math.cos: jnp.cos, math.tan: jnp.tan, math.atan2: jnp.arctan2,
                math.floor: jnp.floor, math.ceil: jnp.ceil, math.hypot: jnp.hypot,
                math.fabs: jnp.abs, math.pow: jnp.power}


def _numpy_call(f, args, kwargs):
    if f in _MATH_TO_JNP:
        return _MATH_TO_JNP[f](*args, **kwargs)
    name = getattr(f, "__name__", "")
    for a in args:
        if isinstance(a, MaskedRows):
            return a.apply(f, args, kwargs)
    if args and isinstance(args[0], TracedList):
        lst = args[0]
        if name in ("sum", "mean", "max", "min", "average") and len(args) == 1 and not kwargs:
            if name == "sum":
                return _sum(lst)
            if name in ("mean", "average"):
                return _sum(lst) / lst.count()
            return _minmax(name, lst)
        if name in ("array", "asarray", "asanyarray"):
            # rows exist where the list has elements: reductions see only those
            return MaskedRows(lst.numeric(name), lst.mask)
        raise UnsupportedError(f"`numpy.{name}` on a traced list",
                               "reduce with sum/mean/min/max, or build the array with a comprehension")
    jf = getattr(jnp.linalg, name, None) if getattr(f, "__module__", "").endswith("linalg") else None
    jf = jf or getattr(jnp, name, None)
    if jf is None:
        raise UnsupportedError(f"`numpy.{name}` on traced values",
                               "use a numpy function that jax.numpy also provides")
    return jf(*args, **kwargs)
