"""Source-to-source conversion of user methods so that they run on traced values.

``convert(fn)`` parses ``fn``'s source, rejects what cannot be compiled (naming the
construct, the user's ``file:line`` and a fix), rewrites control flow into calls of the
runtime in :mod:`mesa_jax._ops`, and compiles the result with the user's filename and
line numbers, so tracebacks point at the user's own code.

Rewrites (``__mj`` is the runtime):

=============================  ===============================================
user code                      converted
=============================  ===============================================
``if c: A else: B``            static ``c``: unchanged; traced ``c``: both branches
                               run under a mask, locals merged with a select
``return`` inside a branch     ``__mj_ret``/``__mj_done`` flags; later statements
                               guarded by ``if not __mj_done``
``for x in xs``                Python iterables: unchanged; traced lists: unrolled,
                               each iteration masked by the slot's validity
``while c: B``                 static ``c``: Python loop; traced ``c``:
                               ``lax.while_loop`` over the locals and the agent
``a and b``, ``a or b``,       ``__mj.and_``/``or_``/``not_``/``ifexp`` (lazy thunks)
``not a``, ``a if c else b``
``[e for x in xs if c]``       ``__mj.comp``: vmapped over a traced list
``a is b``, ``x in xs``        ``__mj.is_``/``is_not``/``in_``
``d[k]``                       ``__mj.getitem``: a host dict looked up by a traced key
``[*xs, a]``                   ``__mj.star_list``: traced lists joined
``o.x += v``                   ``__mj.augattr``: scatter-add on other agents
``f(...)``                     ``__mj.call``: builtins overloaded, user code converted
``o.x`` (load)                 ``__mj.ga``: user properties converted
=============================  ===============================================

Set ``MESA_JAX_SHOW_CONVERTED=1`` to print each converted function.
"""

from __future__ import annotations

import ast
import copy
import inspect
import linecache
import itertools
import os
import textwrap
import types

from .errors import UnsupportedError

__all__ = ["convert", "converted_source"]

_RT = "__mj"
_counter = itertools.count()
_cache: dict = {}
_sources: dict = {}

_UNSUPPORTED = {
    ast.Try: ("`try`/`except`", "remove the `try`: exceptions cannot be caught per agent in a "
              "compiled step; test the condition with `if` instead"),
    ast.With: ("a `with` block", "move the `with` block out of the step (into `__init__` or "
               "host code)"),
    ast.Yield: ("`yield` (a generator)", "return a list, or use a comprehension"),
    ast.YieldFrom: ("`yield from`", "return a list, or use a comprehension"),
    ast.Await: ("`await`", "call the coroutine outside the model step"),
    ast.AsyncFor: ("`async for`", "use a plain `for`"),
    ast.AsyncWith: ("`async with`", "move it out of the step"),
    ast.Global: ("a `global` statement", "keep the value on the model (`self.model.x`)"),
    ast.ClassDef: ("a class definition inside a step", "define the class at module level"),
    ast.Delete: ("`del`", "set the attribute to a neutral value (e.g. `0` or `False`)"),
    ast.Raise: None,  # allowed: raising with static conditions is fine
}
if hasattr(ast, "TryStar"):
    _UNSUPPORTED[ast.TryStar] = _UNSUPPORTED[ast.Try]


def _loc(filename, node):
    return f"{filename}:{getattr(node, 'lineno', '?')}"


_ZERO_DIV = ("ZeroDivisionError", "ArithmeticError", "FloatingPointError")


class _ZeroDivisionPass(ast.NodeTransformer):
    """``try: <one statement> except ZeroDivisionError: H`` becomes
    ``if __mj.any_zero(<its divisors>): H else: <the statement>``.

    Exceptions cannot be caught per agent, but a division by zero can be tested before it
    happens. Only a single simple statement is rewritten (its divisors are evaluated first,
    so they must not depend on the statement itself); any other ``try`` is refused.
    """

    def visit_Try(self, node):
        self.generic_visit(node)
        names = [h.type.id if isinstance(h.type, ast.Name) else None for h in node.handlers]
        simple = (len(node.body) == 1 and isinstance(node.body[0], (ast.Return, ast.Assign, ast.AugAssign, ast.Expr))
                  and len(node.handlers) == 1 and names[0] in _ZERO_DIV and node.handlers[0].name is None
                  and not node.orelse and not node.finalbody)
        if not simple:
            return node
        divisors = [copy.deepcopy(n.right) for n in ast.walk(node.body[0])
                    if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Div, ast.FloorDiv, ast.Mod))]
        if isinstance(node.body[0], ast.AugAssign) and isinstance(node.body[0].op, (ast.Div, ast.FloorDiv, ast.Mod)):
            divisors.append(copy.deepcopy(node.body[0].value))
        test = ast.Call(func=ast.Attribute(value=ast.Name(id=_RT, ctx=ast.Load()), attr="any_zero", ctx=ast.Load()),
                        args=divisors, keywords=[])
        new = ast.If(test=test, body=node.handlers[0].body, orelse=node.body)
        ast.copy_location(test, node)
        return ast.fix_missing_locations(ast.copy_location(new, node))


def _check_supported(tree, filename):
    for node in ast.walk(tree):
        entry = _UNSUPPORTED.get(type(node))
        if entry:
            construct, fix = entry
            raise UnsupportedError(construct, fix, _loc(filename, node))


# ------------------------------------------------------------------ helpers
def _parse_stmts(src, like):
    stmts = ast.parse(textwrap.dedent(src)).body
    for s in stmts:
        _set_loc(s, like)
    return stmts


def _parse_expr(src, like):
    e = ast.parse(src, mode="eval").body
    _set_loc(e, like)
    return e


def _set_loc(tree, like):
    line = getattr(like, "lineno", 1)
    end = getattr(like, "end_lineno", line) or line
    for n in ast.walk(tree):
        if "lineno" in n._attributes:
            n.lineno, n.end_lineno = line, end
            n.col_offset, n.end_col_offset = 0, 0


def _rt(name):
    return ast.Attribute(value=ast.Name(id=_RT, ctx=ast.Load()), attr=name, ctx=ast.Load())


def _call_rt(name, args, like, keywords=()):
    node = ast.Call(func=_rt(name), args=list(args), keywords=list(keywords))
    return ast.copy_location(node, like)


def _thunk(expr):
    lam = ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                           kw_defaults=[], kwarg=None, defaults=[]),
        body=expr,
    )
    return ast.copy_location(lam, expr)


def _assigned_names(stmts):
    """Local names a block assigns (not descending into nested scopes)."""
    names = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp, ast.ClassDef)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for s in stmts:
        visit(s)
    return names


def _append_loops_to_comprehensions(fdef):
    """``for x in xs: [if c:] lst.append(e)`` (``lst`` a local name, the loop doing
    nothing else) -> ``lst = __mj.extend_list(lst, [e for x in xs if c])``: the list
    is built by a comprehension, which runs vectorised over traced collections."""
    def rewrite(stmts):
        out = []
        for st in stmts:
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(st, field, None), list) and not isinstance(
                        st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    setattr(st, field, rewrite(getattr(st, field)))
            if isinstance(st, ast.Try):
                for h in st.handlers:
                    h.body = rewrite(h.body)
            out.append(_as_comprehension(st, fdef) or st)
        return out

    fdef.body = rewrite(fdef.body)


def _as_comprehension(loop, fdef):
    if not isinstance(loop, ast.For) or loop.orelse or len(loop.body) != 1:
        return None
    inside = {id(n) for n in ast.walk(loop)}
    targets = _assigned_names([ast.Assign(targets=[loop.target], value=ast.Constant(0))])
    if any(isinstance(n, ast.Name) and n.id in targets and id(n) not in inside for n in ast.walk(fdef)):
        return None  # the loop variable is used after the loop (a comprehension would not set it)
    inner, conds = loop.body[0], []
    if isinstance(inner, ast.If) and not inner.orelse and len(inner.body) == 1:
        conds, inner = [inner.test], inner.body[0]
    call = inner.value if isinstance(inner, ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == "append" and isinstance(call.func.value, ast.Name)
            and len(call.args) == 1 and not call.keywords):
        return None
    name = call.func.value.id
    uses = [n for n in ast.walk(loop) if isinstance(n, ast.Name) and n.id == name]
    if len(uses) != 1:  # the list is read or rebound in the loop: not a plain build
        return None
    comp = ast.ListComp(elt=call.args[0], generators=[
        ast.comprehension(target=loop.target, iter=loop.iter, ifs=conds, is_async=0)])
    value = ast.Call(func=ast.Attribute(value=ast.Name(id=_RT, ctx=ast.Load()), attr="extend_list",
                                        ctx=ast.Load()),
                     args=[ast.Name(id=name, ctx=ast.Load()), comp], keywords=[])
    new = ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)
    for node in (comp, value, new, value.func, value.func.value, value.args[0], new.targets[0]):
        ast.copy_location(node, loop)
    return new


def _mark_vector_loops(fdef):
    """Mark ``for`` loops whose iterations are independent (``_mj_vector``).

    A loop qualifies when its body carries nothing from one iteration to the next: the
    names it assigns (and its target) are used nowhere else in the function, it has no
    ``break``/``continue``/``return``/``yield``, no ``global``/``nonlocal``, and it does not
    assign attributes of the function's first argument (``self``). Over a traced
    collection such a loop runs as one vmapped body instead of being unrolled.
    """
    first = fdef.args.args[0].arg if fdef.args.args else None
    comp_local = set()  # Name nodes bound by a comprehension's own targets (another scope)
    for comp in ast.walk(fdef):
        if isinstance(comp, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            bound = _assigned_names([ast.Assign(targets=[g.target], value=ast.Constant(0))
                                     for g in comp.generators])
            comp_local |= {id(n) for n in ast.walk(comp) if isinstance(n, ast.Name) and n.id in bound}
    for loop in [n for n in ast.walk(fdef) if isinstance(n, ast.For)]:
        inside = {id(n) for n in ast.walk(loop)}
        used_outside = {n.id for n in ast.walk(fdef)
                        if isinstance(n, ast.Name) and id(n) not in inside and id(n) not in comp_local}
        assigned = _assigned_names(loop.body) | _assigned_names(
            [ast.Assign(targets=[loop.target], value=ast.Constant(0))])
        jumps = _contains(loop.body, (ast.Break, ast.Continue), stop_at_loops=True) or _contains(
            loop.body, (ast.Return, ast.Yield, ast.YieldFrom, ast.Global, ast.Nonlocal))
        self_writes = any(
            isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == first
            for n in ast.walk(loop))
        accs = _accumulators(loop, assigned & used_outside)
        loop._mj_vector = not (assigned & used_outside) - accs and not jumps and not self_writes \
            and not loop.orelse
        loop._mj_accs = sorted(accs)


def _accumulators(loop, carried):
    """Names the loop only adds to (``n += e`` / ``n -= e``, never read in the loop
    otherwise): a sum over the iterations, so the loop can run vectorised."""
    target = _assigned_names([ast.Assign(targets=[loop.target], value=ast.Constant(0))])
    out = set()
    for name in carried - target:
        stores = [n for n in ast.walk(loop) if isinstance(n, ast.Name) and n.id == name]
        aug = [n for n in ast.walk(loop) if isinstance(n, ast.AugAssign)
               and isinstance(n.target, ast.Name) and n.target.id == name]
        if aug and len(aug) == len(stores) and all(isinstance(a.op, (ast.Add, ast.Sub)) for a in aug):
            out.add(name)
    return out


def _contains(stmts, types_, stop_at_loops=False):
    """Whether a block holds a node of ``types_`` (not in nested scopes / inner loops)."""
    def visit(node):
        if isinstance(node, types_):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return False
        if stop_at_loops and isinstance(node, (ast.For, ast.While)):
            return False
        return any(visit(c) for c in ast.iter_child_nodes(node))

    return any(visit(s) for s in stmts)


def _tuple_target(names, like):
    elts = [ast.Name(id=n, ctx=ast.Store()) for n in names]
    t = ast.Tuple(elts=elts, ctx=ast.Store())
    _set_loc(t, like)
    return t


# ------------------------------------------------------------ return pass
class _ReturnPass:
    """Turn returns nested in branches/loops into ``__mj_ret``/``__mj_done`` assignments."""

    @staticmethod
    def needed(fn):
        body = fn.body
        for i, s in enumerate(body):
            if isinstance(s, ast.Return) and i == len(body) - 1:
                continue
            if _contains([s], ast.Return):
                return True
        return False

    def run(self, fn):
        if not self.needed(fn):
            return
        fn.body = self._block(fn.body)
        init = _parse_stmts("__mj_ret = __mj.UNDEF\n__mj_done = False\n", fn.body[0])
        tail = _parse_stmts("return __mj.ret_value(__mj_ret)\n", fn.body[-1])
        fn.body = init + fn.body + tail

    def _block(self, stmts):
        out = []
        for i, s in enumerate(stmts):
            has_ret = _contains([s], ast.Return)
            out.extend(self._stmt(s))
            if has_ret and i + 1 < len(stmts):
                rest = self._block(stmts[i + 1:])
                guard = ast.If(test=_parse_expr("not __mj_done", s), body=rest, orelse=[])
                ast.copy_location(guard, stmts[i + 1])
                out.append(guard)
                break
        return out

    def _stmt(self, s):
        if isinstance(s, ast.Return):
            value = s.value or ast.Constant(value=None)
            a = ast.Assign(targets=[ast.Name(id="__mj_ret", ctx=ast.Store())], value=value)
            d = _parse_stmts("__mj_done = True\n", s)[0]
            ast.copy_location(a, s)
            return [a, d]
        if isinstance(s, ast.If):
            s.body = self._block(s.body) or [ast.Pass()]
            s.orelse = self._block(s.orelse)
        elif isinstance(s, (ast.For, ast.While)):
            if _contains(s.body, ast.Return):
                s._mj_user_break = _contains(s.body, (ast.Break, ast.Continue), True)
                stop = _parse_stmts("if __mj.static_true(__mj_done):\n    break\n", s)
                stop[0]._mj_generated = True
                guard = ast.If(test=_parse_expr("not __mj_done", s),
                               body=self._block(s.body), orelse=[])
                ast.copy_location(guard, s)
                s.body = stop + [guard]
            s.orelse = self._block(s.orelse)
        return [s]


# ------------------------------------------------------------ main pass
class _Converter(ast.NodeTransformer):
    def __init__(self, filename):
        self.filename = filename

    def tmp(self, stem):
        return f"__mj_{stem}{next(_counter)}"

    # --- expressions -----------------------------------------------------
    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("super", "locals", "globals"):
            return node
        if (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id == _RT):
            return node
        return ast.copy_location(
            ast.Call(func=_rt("call"), args=[node.func] + node.args, keywords=node.keywords), node)

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        if isinstance(node.value, ast.Name) and node.value.id == _RT:
            return node
        return _call_rt("ga", [node.value, ast.Constant(value=node.attr)], node)

    def visit_Subscript(self, node):
        self.generic_visit(node)
        sl = node.slice
        if not isinstance(node.ctx, ast.Load) or isinstance(sl, ast.Slice) or (
                isinstance(sl, ast.Tuple) and any(isinstance(e, ast.Slice) for e in sl.elts)):
            return node
        return _call_rt("getitem", [node.value, sl], node)

    def visit_List(self, node):
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load) or not any(isinstance(e, ast.Starred) for e in node.elts):
            return node
        parts = [ast.Tuple(elts=[ast.Constant(value=isinstance(e, ast.Starred)),
                                 e.value if isinstance(e, ast.Starred) else e], ctx=ast.Load())
                 for e in node.elts]
        return _call_rt("star_list", parts, node)

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        name = "and_" if isinstance(node.op, ast.And) else "or_"
        return _call_rt(name, [_thunk(v) for v in node.values], node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return _call_rt("not_", [node.operand], node)
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return _call_rt("ifexp", [node.test, _thunk(node.body), _thunk(node.orelse)], node)

    def visit_Compare(self, node):
        self.generic_visit(node)
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, ast.Is):
                parts.append(_call_rt("is_", [left, right], node))
            elif isinstance(op, ast.IsNot):
                parts.append(_call_rt("is_not", [left, right], node))
            elif isinstance(op, ast.In):
                parts.append(_call_rt("in_", [left, right], node))
            elif isinstance(op, ast.NotIn):
                parts.append(_call_rt("not_", [_call_rt("in_", [left, right], node)], node))
            elif isinstance(op, ast.Eq):
                parts.append(_call_rt("eq", [left, right], node))
            elif isinstance(op, ast.NotEq):
                parts.append(_call_rt("ne", [left, right], node))
            else:
                parts.append(ast.copy_location(
                    ast.Compare(left=left, ops=[op], comparators=[right]), node))
            left = right
        if len(parts) == 1:
            return parts[0]
        return _call_rt("and_", [_thunk(p) for p in parts], node)

    def _comp(self, node, kind):
        gens = node.generators
        if len(gens) != 1 or gens[0].is_async:
            self.generic_visit(node)
            return node
        g = gens[0]
        target = g.target
        if isinstance(target, ast.Name):
            params, star = [target.id], False
        elif isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
            params, star = [e.id for e in target.elts], True
        else:
            self.generic_visit(node)
            return node
        args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params], vararg=None,
                             kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
        elt_fn = ast.copy_location(ast.Lambda(args=args, body=node.elt), node)
        if g.ifs:
            cond = g.ifs[0] if len(g.ifs) == 1 else ast.BoolOp(op=ast.And(), values=g.ifs)
            ast.copy_location(cond, g.ifs[0])
            cond_fn = ast.copy_location(ast.Lambda(args=copy.deepcopy(args), body=cond), node)
        else:
            cond_fn = ast.Constant(value=None)
        call = _call_rt("comp", [g.iter, elt_fn, cond_fn, ast.Constant(value=star),
                                 ast.Constant(value=kind)], node)
        for i, a in enumerate(call.args):
            call.args[i] = self.visit(a)
        return call

    def visit_ListComp(self, node):
        return self._comp(node, "list")

    def visit_GeneratorExp(self, node):
        return self._comp(node, "gen")

    # --- statements ------------------------------------------------------
    def visit_FunctionDef(self, node):
        # nested function: convert it too, and mark it as converted
        _ReturnPass().run(node)
        self.generic_visit(node)
        node.decorator_list = [_rt("mark_converted")] + node.decorator_list
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if isinstance(node.target, ast.Attribute):
            op = type(node.op).__name__
            call = _call_rt("augattr", [node.target.value, ast.Constant(value=node.target.attr),
                                        ast.Constant(value=op), node.value], node)
            return ast.copy_location(ast.Expr(value=call), node)
        return node

    def visit_If(self, node):
        self.generic_visit(node)
        c = self.tmp("c")
        names = sorted(_assigned_names(node.body) | _assigned_names(node.orelse))
        test_assign = ast.copy_location(ast.Assign(
            targets=[ast.Name(id=c, ctx=ast.Store())],
            value=_call_rt("test", [node.test], node)), node)
        py_if = ast.copy_location(ast.If(test=ast.Name(id=c, ctx=ast.Load()),
                                         body=node.body, orelse=node.orelse), node)
        if getattr(node, "_mj_generated", False):
            masked = _parse_stmts("pass\n", node)
        elif _contains(node.body + node.orelse, (ast.Break, ast.Continue), stop_at_loops=True):
            masked = _parse_stmts(
                f"__mj.fail('`break`/`continue` under a condition on traced values', "
                f"'compute a flag (`done = done or cond`) and guard the rest of the loop body "
                f"with `if not done:`', {_loc(self.filename, node)!r})\n", node)
        else:
            masked = self._masked_if(node, c, names)
        outer = ast.copy_location(ast.If(test=_call_rt("is_static", [ast.Name(id=c, ctx=ast.Load())], node),
                                         body=[py_if], orelse=masked), node)
        return [test_assign, outer]

    def _masked_if(self, node, c, names):
        pre, ta, tb = self.tmp("pre"), self.tmp("ta"), self.tmp("tb")
        nm = repr(tuple(names))
        out = _parse_stmts(f"{pre} = __mj.snap(locals(), {nm})\n__mj.push({c})\n", node)
        out += copy.deepcopy(node.body)
        out += _parse_stmts(f"{ta} = __mj.snap(locals(), {nm})\n__mj.pop()\n", node)
        if names:
            restore = ast.Assign(targets=[_tuple_target(names, node)],
                                 value=ast.Name(id=pre, ctx=ast.Load()))
            out.append(ast.copy_location(restore, node))
        out += _parse_stmts(f"__mj.push(__mj.not_({c}))\n", node)
        out += copy.deepcopy(node.orelse)
        out += _parse_stmts(f"{tb} = __mj.snap(locals(), {nm})\n__mj.pop()\n", node)
        if names:
            merge = ast.Assign(targets=[_tuple_target(names, node)],
                               value=_parse_expr(f"__mj.merge({c}, {ta}, {tb}, {nm})", node))
            out.append(ast.copy_location(merge, node))
        return out

    def visit_For(self, node):
        if getattr(node, "_mj_vector", False):
            return self._vector_for(node)
        user_break = getattr(node, "_mj_user_break", None)
        if user_break is None:
            user_break = _contains(node.body, (ast.Break, ast.Continue), stop_at_loops=True)
        self.generic_visit(node)
        v, pre = self.tmp("v"), self.tmp("pre")
        target_names = _assigned_names([ast.Assign(targets=[node.target], value=ast.Constant(0))])
        names = sorted(_assigned_names(node.body) - target_names)
        nm = repr(tuple(names))
        it = _call_rt("iter_", [node.iter, ast.Constant(value=user_break),
                                ast.Constant(value=_loc(self.filename, node))], node)
        head = _parse_stmts(f"{pre} = __mj.snap(locals(), {nm})\n__mj.push({v})\n", node)
        body = ast.Try(body=node.body, handlers=[], orelse=[],
                       finalbody=_parse_stmts("__mj.pop()\n", node))
        ast.copy_location(body, node)
        tail = []
        if names:
            merge = ast.Assign(targets=[_tuple_target(names, node)],
                               value=_parse_expr(f"__mj.merge({v}, __mj.snap(locals(), {nm}), {pre}, {nm})", node))
            tail.append(ast.copy_location(merge, node))
        target = ast.Tuple(elts=[ast.Name(id=v, ctx=ast.Store()), node.target], ctx=ast.Store())
        ast.copy_location(target, node)
        new = ast.For(target=target, iter=it, body=head + [body] + tail, orelse=node.orelse,
                      type_comment=None)
        return ast.copy_location(new, node)

    def _vector_for(self, node):
        """``for T in it: body`` -> ``def f(item): T = item; body`` + ``__mj.for_each(f, it)``.

        Accumulators (``n += e`` only) start at 0 in ``f``, which returns them; for_each
        sums them over the iterations and the loop adds the sums."""
        self.generic_visit(node)
        accs = getattr(node, "_mj_accs", [])
        fn, item, sums = self.tmp("forbody"), self.tmp("item"), self.tmp("sums")
        defs = _parse_stmts(f"def {fn}({item}):\n    pass\n", node)
        unpack = ast.copy_location(ast.Assign(targets=[node.target], value=ast.Name(id=item, ctx=ast.Load())), node)
        starts = _parse_stmts("".join(f"{a} = 0\n" for a in accs), node) if accs else []
        ret = _parse_stmts(f"return ({''.join(a + ', ' for a in accs)})\n", node) if accs else []
        defs[0].body = [unpack] + starts + node.body + ret
        call = _call_rt("for_each", [ast.Name(id=fn, ctx=ast.Load()), node.iter,
                                     ast.Constant(value=_loc(self.filename, node)),
                                     ast.Constant(value=len(accs))], node)
        if not accs:
            return defs + [ast.copy_location(ast.Expr(value=call), node)]
        run = ast.copy_location(ast.Assign(targets=[ast.Name(id=sums, ctx=ast.Store())], value=call), node)
        adds = _parse_stmts("".join(f"{a} = {a} + {sums}[{i}]\n" for i, a in enumerate(accs)), node)
        return defs + [run] + adds

    def visit_While(self, node):
        jumps = _contains(node.body, (ast.Break, ast.Continue, ast.Return), stop_at_loops=True)
        self.generic_visit(node)
        loc = _loc(self.filename, node)
        if jumps or node.orelse:
            node.test = _call_rt("test_static", [node.test, ast.Constant(value=loc)], node)
            return node
        names = sorted(_assigned_names(node.body))
        nm = repr(tuple(names))
        cond_fn, body_fn, state = self.tmp("wcond"), self.tmp("wbody"), self.tmp("ws")
        unpack = f"    ({', '.join(names)},) = {state}\n" if names else ""
        pack = f"({', '.join(names)},)" if names else "()"
        src = (f"def {cond_fn}({state}):\n{unpack}    return 0\n"
               f"def {body_fn}({state}):\n{unpack}    pass\n    return {pack}\n")
        defs = _parse_stmts(src, node)
        defs[0].body[-1].value = node.test
        defs[1].body = defs[1].body[:-2] + node.body + defs[1].body[-1:]
        call = _parse_expr(f"__mj.while_({cond_fn}, {body_fn}, __mj.snap(locals(), {nm}), {nm}, {loc!r})", node)
        if names:
            assign = ast.Assign(targets=[_tuple_target(names, node)], value=call)
        else:
            assign = ast.Expr(value=call)
        return defs + [ast.copy_location(assign, node)]


# ------------------------------------------------------------ entry points
def _source_of(fn):
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as exc:
        raise UnsupportedError(
            f"`{fn.__qualname__}`, whose source code cannot be read",
            "define the method in a .py file (mesa_jax converts methods from their source)",
            location=f"{getattr(fn.__code__, 'co_filename', '?')}:{getattr(fn.__code__, 'co_firstlineno', '?')}",
        ) from exc
    return textwrap.dedent("".join(lines)), first


def _lambda_def(fn):
    """A lambda's expression as ``def`` (found in its file by line and columns), or None."""
    code = fn.__code__
    lines = linecache.getlines(code.co_filename)
    if not lines:
        return None
    try:
        tree = _parsed_files.get(code.co_filename)
        if tree is None:
            tree = _parsed_files[code.co_filename] = ast.parse("".join(lines))
    except SyntaxError:
        return None
    cols = [(ln, c) for ln, _, c, ec in code.co_positions()
            if ln is not None and c is not None and (c, ec) != (0, 0)]  # (0, 0): RESUME
    lams = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno]
    if cols:
        lo = min(cols)
        hi = max(cols)
        lams = [n for n in lams
                if (n.body.lineno, n.body.col_offset) <= lo <= hi <= (n.body.end_lineno, n.body.end_col_offset)]
    if len(lams) != 1:
        return None
    lam = lams[0]
    fdef = ast.FunctionDef(name="__mj_lambda", args=lam.args, body=[ast.Return(value=lam.body)],
                           decorator_list=[], returns=None, type_comment=None)
    ast.copy_location(fdef, lam)
    ast.copy_location(fdef.body[0], lam.body)
    return fdef


_parsed_files: dict = {}


def convert(fn):
    """The converted version of a plain Python function (cached).

    Arguments:
        fn: a function (not a bound method) defined in a source file.

    Returns:
        A function with the same signature whose control flow works on traced values.
    """
    if getattr(fn, "__mj_converted__", False):
        return fn
    # code objects compare by value: one file loaded as two modules (a script run twice)
    # must not share a conversion bound to the first module's globals. The cached function keeps ``fn``
    # (its globals and cells) alive, so these ids are not reused while the entry exists.
    key = (fn.__code__, id(fn.__globals__), fn.__closure__ and tuple(id(c) for c in fn.__closure__))
    hit = _cache.get(key)
    if hit is not None:
        return hit
    filename = fn.__code__.co_filename
    if fn.__name__ == "<lambda>":
        fdef = _lambda_def(fn)
        if fdef is None:
            # no source to read (e.g. typed at a prompt): it runs as it is, and a traced
            # `and`/`or`/`if` in it is reported by the concretization check
            return fn
        first = fdef.lineno
    else:
        source, first = _source_of(fn)
        module = ast.parse(source)
        ast.increment_lineno(module, first - 1)
        fdef = module.body[0]
    if isinstance(fdef, ast.AsyncFunctionDef):
        raise UnsupportedError("an `async def` method", "use a plain `def`", _loc(filename, fdef))
    if not isinstance(fdef, ast.FunctionDef):
        raise UnsupportedError(
            f"`{fn.__qualname__}` (a lambda or an expression)",
            "define it with `def` in a .py file", _loc(filename, fdef))
    _ZeroDivisionPass().visit(fdef)
    _check_supported(fdef, filename)
    _append_loops_to_comprehensions(fdef)
    _mark_vector_loops(fdef)
    fdef.decorator_list = []
    _ReturnPass().run(fdef)
    conv = _Converter(filename)
    fdef.body = [s for stmt in fdef.body for s in _as_list(conv.visit(stmt))]
    freevars = fn.__code__.co_freevars
    factory_name = "__mj_factory"
    factory = ast.FunctionDef(
        name=factory_name,
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=_RT)] + [ast.arg(arg=v) for v in freevars],
                           vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=[fdef, ast.Return(value=ast.Name(id=fdef.name, ctx=ast.Load()))],
        decorator_list=[], returns=None, type_comment=None)
    ast.copy_location(factory, fdef)
    _set_loc(factory.body[1], fdef)
    mod = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(mod)
    code = compile(mod, filename, "exec")
    fcode = next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == factory_name)
    from . import _ops

    values = []
    for i, name in enumerate(freevars):
        try:
            values.append(fn.__closure__[i].cell_contents)
        except ValueError:
            values.append(None)
    made = types.FunctionType(fcode, fn.__globals__)(_ops, *values)
    made.__defaults__ = fn.__defaults__
    made.__kwdefaults__ = fn.__kwdefaults__
    made.__mj_converted__ = True
    made.__mj_original__ = fn
    made.__qualname__ = fn.__qualname__
    _cache[key] = made
    text = ast.unparse(fdef)
    _sources[made] = text
    if os.environ.get("MESA_JAX_SHOW_CONVERTED"):
        print(f"# converted {fn.__qualname__} ({filename}:{first})\n{text}\n")
    return made


def _as_list(x):
    return x if isinstance(x, list) else [x]


def converted_source(fn):
    """The converted source of ``fn`` as text (for debugging)."""
    return _sources[convert(fn)]
