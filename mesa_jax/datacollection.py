"""DataCollector: Mesa's reporters, evaluated on device, read as Polars frames.

Eagerly (in ``__init__``) reporters run as Python. Inside a compiled step they are traced:
model reporters become scalars, agent reporters whole columns; the values stay in device
buffers (stacked over the steps of a ``run_for`` chunk) and become a Polars frame only
when ``get_*_dataframe()`` is called.
"""

from __future__ import annotations

from enum import Enum

import jax
import numpy as np
import polars as pl

from . import _strings
from ._context import current
from .errors import UnsupportedError

__all__ = ["DataCollector"]


def _call_reporter(rep, obj, call=lambda f, *a: f(*a)):
    """Evaluate one reporter on ``obj``; ``call`` is the converted-code call when traced."""
    if isinstance(rep, str):
        return getattr(obj, rep)
    if isinstance(rep, (list, tuple)):
        func, args = rep[0], (rep[1] if len(rep) > 1 else [])
        return call(func, *args) if hasattr(func, "__self__") else call(func, obj, *args)
    if hasattr(rep, "__self__") and rep.__self__ is obj:
        return call(rep)
    return call(rep, obj)


class DataCollector:
    """Collects model- and agent-level data each time ``collect`` is called (Mesa's API)."""

    def __init__(self, model_reporters=None, agent_reporters=None, agenttype_reporters=None,
                 tables=None):
        """Create a collector.

        Arguments:
            model_reporters: name -> attribute name, ``f(model)``, a bound method of the
                model, or ``[f, [args]]``.
            agent_reporters: name -> attribute name or ``f(agent)``.
            agenttype_reporters: agent class -> {name: reporter}.
            tables: name -> list of column names (rows added with ``add_table_row``).
        """
        self.model_reporters = dict(model_reporters or {})
        self.agent_reporters = dict(agent_reporters or {})
        self.agenttype_reporters = dict(agenttype_reporters or {})
        self.tables = {name: {c: [] for c in cols} for name, cols in (tables or {}).items()}
        self._records = []  # ("host", record) or ("device", record, n_steps, row, classes)
        self._enums = {}  # (agent class, agent reporter) -> Enum class of its codes
        self._texts = set()  # (agent class, agent reporter) giving text (interned codes)
        self._host_cache = None

    # ------------------------------------------------------------ collecting
    def collect(self, model):
        """Record the reporters' values now."""
        ctx = current()
        if ctx is not None:
            ctx.collected.append((self, self._traced_record(model, ctx)))
            return
        self._records.append(("host", self._host_record(model)))
        self._host_cache = None

    def _host_record(self, model):
        rec = {"step": int(model.steps), "model": {}, "agents": []}
        for name, rep in self.model_reporters.items():
            rec["model"][name] = _call_reporter(rep, model)
        if self.agent_reporters:
            self._note_enums(model)
            for t in model._mj_tables.values():
                rows = t.alive_rows()
                vals = {}
                for name, rep in self.agent_reporters.items():
                    if isinstance(rep, str) and t.has(rep):
                        vals[name] = np.asarray(t.cols[rep])[rows]
                    else:
                        out = [_call_reporter(rep, t.handle(r)) for r in rows]
                        kinds = {type(x) for x in out}
                        if len(kinds) == 1 and issubclass(next(iter(kinds)), Enum):
                            enum = next(iter(kinds))  # members, as a step reads them: codes
                            self._enums[(t.cls, name)] = enum
                            out = [list(enum).index(x) for x in out]
                        elif kinds == {str}:  # text, as a step reads it: codes
                            self._texts.add((t.cls, name))
                            out = [_strings.intern(x) for x in out]
                        vals[name] = np.asarray(out)
                rec["agents"].append((t.cls, np.asarray(t.uid)[rows], vals))
        return rec

    def _traced_record(self, model, ctx):
        from . import _ops

        if ctx.frame.agent is not None or ctx.frame.masks:
            raise UnsupportedError("`datacollector.collect` inside an agent step or a traced branch",
                                   "call collect from `Model.step`, outside conditions on traced values")
        rec = {"step": model.steps, "model": {}, "agents": []}
        for name, rep in self.model_reporters.items():
            rec["model"][name] = _call_reporter(rep, model, _ops.call)
        if self.agent_reporters:
            from ._collections import TracedList

            self._note_enums(model)
            for t in model._mj_tables.values():
                vals = {}
                for name, rep in self.agent_reporters.items():
                    if isinstance(rep, str) and rep in t.cols:
                        vals[name] = t.cols[rep]
                    else:
                        lst = TracedList(jax.numpy.arange(t.cap), t.alive, table=t)
                        fn = lambda a, rep=rep: _call_reporter(rep, a, _ops.call)  # noqa: E731
                        out = _ops._vectorised([lst], fn, None, False, "agent reporter")
                        if out.wrap is _strings.wrap:
                            self._texts.add((t.cls, name))
                        vals[name] = out.values
                rec["agents"].append((t.uid, t.alive, vals))
        return jax.tree.map(jax.numpy.asarray, rec)

    def _note_enums(self, model):
        """Which agent reporters read an Enum or text attribute (kept as codes), per
        class; a reporter function is known to give members once it did on the host."""
        for t in model._mj_tables.values():
            for name, rep in self.agent_reporters.items():
                if isinstance(rep, str) and rep in t.enums:
                    self._enums[(t.cls, name)] = t.enums[rep]
                if isinstance(rep, str) and rep in t.strings:
                    self._texts.add((t.cls, name))

    def _append_device(self, record, n_steps, model, row=None):
        """A record on the device: one step's, ``n_steps`` stacked, or (``row``) the step
        at that index of records stacked by a chunk run ahead (fetched once, when read).
        Its agent part lists the model's tables in their order (the classes kept here)."""
        if self.agent_reporters:
            self._note_enums(model)  # (a program traced for another model noted them there)
        self._records.append(("device", record, n_steps, row, tuple(model._mj_tables)))
        self._host_cache = None

    # --------------------------------------------------------------- reading
    def _host_records(self):
        if self._host_cache is not None:
            return self._host_cache
        out, fetched = [], {}
        for entry in self._records:
            if entry[0] == "host":
                out.append(entry[1])
                continue
            _, rec, n, row, classes = entry
            if id(rec) not in fetched:
                fetched[id(rec)] = jax.device_get(rec)
            rec = fetched[id(rec)]
            for i in range(n):
                if row is not None:
                    one = jax.tree.map(lambda a: a[row], rec)
                elif n == 1 and np.ndim(rec["step"]) == 0:
                    one = rec
                else:
                    one = jax.tree.map(lambda a, i=i: a[i], rec)
                agents = []
                for cls, (uid, alive, vals) in zip(classes, one["agents"]):
                    alive = np.asarray(alive, bool)
                    agents.append((cls, np.asarray(uid)[alive], {k: np.asarray(v)[alive] for k, v in vals.items()}))
                out.append({"step": int(one["step"]),
                            "model": {k: np.asarray(v).item() if np.ndim(v) == 0 else np.asarray(v)
                                      for k, v in one["model"].items()},
                            "agents": agents})
        self._records = [("host", r) for r in out]
        self._host_cache = out
        return out

    @property
    def model_vars(self) -> dict:
        """Model reporter values as lists (Mesa's ``model_vars``)."""
        recs = self._host_records()
        return {name: [r["model"][name] for r in recs] for name in self.model_reporters}

    def get_model_vars_dataframe(self) -> pl.DataFrame:
        """One row per ``collect``, one column per model reporter (a Polars DataFrame)."""
        return pl.DataFrame(self.model_vars)

    def _agent_rows(self, steps) -> dict:
        """{step: one dict per agent, by id: ``AgentID`` and the reporters' values as
        Python values (Enum members, text)} for the given steps, the last collect of each
        (Mesa's agent records, as ``batch_run`` reads them)."""
        last = {r["step"]: r for r in self._host_records() if r["step"] in steps}
        out = {}
        for r in last.values():
            rows = []
            for cls, uid, vals in r["agents"]:
                cols = {}
                for name in self.agent_reporters:
                    v = vals.get(name)
                    enum = self._enums.get((cls, name))
                    if v is None:
                        cols[name] = [None] * len(uid)
                    elif enum is not None:
                        members = list(enum)
                        cols[name] = [members[c] for c in np.asarray(v, np.int64).tolist()]
                    elif (cls, name) in self._texts:
                        cols[name] = list(_strings.texts(v))
                    else:
                        cols[name] = np.asarray(v).tolist()
                rows.extend({"AgentID": int(u), **{n: c[i] for n, c in cols.items()}}
                            for i, u in enumerate(np.asarray(uid).tolist()))
            out[r["step"]] = sorted(rows, key=lambda a: a["AgentID"])
        return out

    def _agent_lazy(self) -> pl.LazyFrame:
        frames = []
        enums = self._enums
        records = self._host_records()
        last = {r["step"]: j for j, r in enumerate(records)}
        for j, r in enumerate(records):
            if last[r["step"]] != j:  # Mesa keeps one set of agent records per step: the last
                continue
            step_frames = []
            for cls, uid, vals in r["agents"]:
                cols = {"Step": np.full(len(uid), r["step"], np.int64), "AgentID": uid.astype(np.int64)}
                for name in self.agent_reporters:
                    v = vals.get(name)
                    enum = enums.get((cls, name))
                    if enum is not None and v is not None:  # codes -> member names
                        names = [m.name for m in enum]
                        cols[name] = pl.Series(name, np.asarray(names, object)[np.asarray(v, np.int64)],
                                               dtype=pl.Enum(names))
                        continue
                    if (cls, name) in self._texts and v is not None:  # codes -> text
                        cols[name] = pl.Series(name, _strings.texts(v), dtype=pl.String)
                        continue
                    cols[name] = v if v is not None and v.ndim == 1 else list(v) if v is not None else None
                step_frames.append(pl.DataFrame(cols).lazy())
            # Mesa lists a step's agents in creation order, i.e. by id (tables come by class
            # name, and newborns fill free rows): sort where the rows are not in that order
            ids = np.concatenate([uid for _, uid, _ in r["agents"]]) if r["agents"] else np.zeros(0)
            if np.any(ids[1:] < ids[:-1]):
                step_frames = [pl.concat(step_frames, how="diagonal_relaxed").sort("AgentID", maintain_order=True)]
            frames.extend(step_frames)
        if not frames:
            schema = {"Step": pl.Int64, "AgentID": pl.Int64}
            return pl.DataFrame(schema=schema).lazy()
        return pl.concat(frames, how="diagonal_relaxed")

    def get_agent_vars_dataframe(self) -> pl.DataFrame:
        """Long format: ``Step``, ``AgentID``, one column per agent reporter (Polars)."""
        return self._agent_lazy().collect()

    def get_agent_vars_lazyframe(self) -> pl.LazyFrame:
        """The agent data as a Polars LazyFrame."""
        return self._agent_lazy()

    # ---------------------------------------------------------------- tables
    def add_table_row(self, table_name, row, ignore_missing=False):
        """Add a row to a user table (host only)."""
        if current() is not None:
            raise UnsupportedError("`add_table_row` inside a compiled step",
                                   "collect with model or agent reporters instead")
        if table_name not in self.tables:
            raise Exception("Table does not exist.")
        for column in self.tables[table_name]:
            if column in row:
                self.tables[table_name][column].append(row[column])
            elif ignore_missing:
                self.tables[table_name][column].append(None)
            else:
                raise Exception("Could not insert row with missing column")

    def get_table_dataframe(self, table_name) -> pl.DataFrame:
        if table_name not in self.tables:
            raise Exception("No such table.")
        return pl.DataFrame(self.tables[table_name])
