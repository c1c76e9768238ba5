"""s15 instances: concrete, policy-respecting values for every accepted template.

Size: over 400 lines because slot filling, record choice and the simulated state of one trajectory are one algorithm.

Deterministic code, no LLM. For each accepted template, users (core-entity records) are
tried in an order drawn from the seed; for a user the instance is built slot by slot:

* the user's own records for relationship tables (their core foreign key equals the user),
  any record for peripheral entities;
* a record is only taken when every call that acts on it finds its preconditions met, which
  is checked by *simulating* the trajectory on a copy of the record (effects and written
  values applied in order: cancel-after-reschedule needs ``scheduled`` both times);
* values the user supplies respect the column's enum / range, dates and date-times lie
  after ``simulation_time``, and an update writes a value different from the current one
  (so the write really changes the state, which s16 then proves);
* search / compute filters take the value that matches the record the task is about;
* an update call always writes at least one value: when the template neither requires
  nor mentions any of its (all optional) value parameters, the first one, in parameter
  order, that is no precondition column and for which a valid new value exists is filled
  (s17 then states it in the query's instruction).

Besides the records the slots name, ``records`` holds the user's own core record and the
records the touched relationship rows point at (the course of an enrollment): s17 lets a
query mention their values.

Up to ``tasks.samples_per_template`` distinct instances per template; the golden calls'
arguments are fixed here, except IDs that a create earlier in the trajectory returns: those
carry a ``resolve`` rule (call index + result field) that s16 and every replay apply.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import failed_input
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import WRITE_KINDS
from agentskiller.models.policy_rules import PolicyRule
from agentskiller.models.tasks import TASK_KINDS, ForbiddenCall, GoldenCall, Instance, Resolve, Slot, TaskTemplate
from agentskiller.steps.tasks import lookups, task_kinds
from agentskiller.steps.tasks.task_env import (
    TASK_INPUTS,
    EnvView,
    _table_columns,
    linked_sources,
    linked_targets,
    slot_names,
)

SCHEMA = "instances"
HOURS = (9, 10, 11, 14, 15, 16)


class NoInstance(Exception):
    """This user cannot make the template meaningful (no suitable record, say)."""


def first_param(call: GoldenCall) -> str:
    """The argument an authorize call identifies the user by (its only / first one)."""
    return next(iter(call.arguments))


def _type_of(v: Any) -> str:
    from agentskiller.grounding import iso_when

    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str) and iso_when(v) is not None:
        return "datetime" if "T" in v else "date"
    return "string"


def _parse_time(value: str) -> dt.datetime:
    v = value.replace("Z", "+00:00")
    t = dt.datetime.fromisoformat(v)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def future_value(sim_time: str, kind: str, rng: random.Random, avoid: Any = None, like: str | None = None) -> str:
    """A date / date-time 1-60 days after the simulation time, formatted like ``like``."""
    base = _parse_time(sim_time) if sim_time else dt.datetime(2025, 6, 2, 9, tzinfo=dt.UTC)
    for _ in range(20):
        day = (base + dt.timedelta(days=rng.randint(1, 60))).date()
        if kind == "date":
            v = day.isoformat()
        else:
            t = dt.datetime.combine(day, dt.time(rng.choice(HOURS)), tzinfo=dt.UTC)
            v = (
                t.strftime("%Y-%m-%dT%H:%M:%SZ")
                if (like is None or like.endswith("Z"))
                else t.replace(tzinfo=None).isoformat(timespec="seconds")
            )
        if v != avoid:
            return v
    raise NoInstance("no distinct future date")


class Builder:
    """Builds instances of one template over the env's tables."""

    def __init__(
        self,
        view: EnvView,
        tables: dict[str, dict],
        template: TaskTemplate,
        rules: dict[str, dict[str, list[PolicyRule]]] | None = None,
    ):
        self.view = view
        self.tables = tables
        self.tpl = template
        self.rules = rules or {}  # member domain -> tool -> its enforced rules
        self.slots = {s.name: s for s in template.slots}
        self.used = set(slot_names(template.instruction)) | set(slot_names(template.reason_for_call))
        self.refs = [view.tool(n) for n in template.trajectory]
        # cross-domain links: (call, param) -> link; (table, column) of their sources
        self.fed = linked_targets(template.links)
        self.hidden = linked_sources(view, template.trajectory, template.links)
        self.fallback = self._update_fallbacks()

    def _update_fallbacks(self) -> dict[str, tuple[int, int]]:
        """Value slot -> (update call, rank) for update calls that would otherwise write
        nothing: every optional value slot of the call, best candidate first."""
        pre_cols = {c.column for ref in self.refs for c in ref.tool.preconditions}
        out: dict[str, tuple[int, int]] = {}
        for i, ref in enumerate(self.refs):
            if ref.tool.kind != "update" or any(c == i for c, _p in self.fed):
                continue  # (a linked value is the update's new value)
            vs = [s for s in self.slots.values() if s.kind == "value" and i in s.calls]
            if not vs or any(s.required or s.name in self.used for s in vs):
                continue
            order = {(p.column or p.name): k for k, p in enumerate(ref.tool.parameters)}
            vs.sort(key=lambda s: (s.column in pre_cols, order.get(s.column, len(order)), s.name))
            for rank, s in enumerate(vs):
                out[s.name] = (i, rank)
        return out

    # ------------------------------------------------------------ metadata
    def column_spec(self, table: str, column: str, call: int | None) -> dict:
        """Type / enum / range of a column, from the relationship declaration or the
        parameter that writes it."""
        spec: dict[str, Any] = {}
        if call is not None:
            ref = self.refs[call]
            for p in ref.tool.parameters:
                if (p.column or p.name) == column:
                    spec = {"type": p.type, "enum": p.enum, "minimum": p.minimum, "maximum": p.maximum}
        for dom in self.view.domains:
            for rel in self.view.blueprints[dom].relationships:
                if self.view.table_name(dom, rel.name) == table and rel.column(column):
                    c = rel.column(column)
                    spec = {
                        "type": c.type,
                        "enum": spec.get("enum") or c.enum,
                        "minimum": c.minimum if c.minimum is not None else spec.get("minimum"),
                        "maximum": c.maximum if c.maximum is not None else spec.get("maximum"),
                    }
        return spec

    def records(self, table: str) -> list[dict]:
        return self.tables.get(table, {}).get("records", [])

    def owner_column(self, table: str) -> str | None:
        for dom in self.view.domains:
            for rel in self.view.blueprints[dom].relationships:
                if self.view.table_name(dom, rel.name) == table:
                    return self.view.core_fk(dom, rel.name)
        return None

    # ------------------------------------------------------------- values
    def bound_limit(self, slot: Slot, current: dict | None, values: dict) -> float | None:
        """The ``at_most`` limit of a slot's column: the attribute of the record the row's foreign
        key names (a record slot of the same call, else the current record's value)."""
        for dom in self.view.domains:
            for rel in self.view.blueprints[dom].relationships:
                col = rel.column(slot.column)
                if self.view.table_name(dom, rel.name) != slot.table or col is None or not col.at_most:
                    continue
                entity, attr = col.at_most.split(".", 1)
                via = next((c.name for c in rel.columns if c.references == entity), None)
                same_call = [
                    values[o.name]
                    for o in self.slots.values()
                    if o.column == via and o.name in values and slot.calls and slot.calls[0] in o.calls
                ]
                # else the record the call acts on; else (a record created earlier in the
                # trajectory, whose key the current copy lacks) the one the trajectory names
                anywhere = [values[o.name] for o in self.slots.values() if o.column == via and o.name in values]
                key = next(iter(same_call), None)
                if key is None:
                    key = (current or {}).get(via or "")
                if key is None and anywhere:
                    key = anywhere[0]
                pk = self.view.primary_key(dom, entity)
                hit = next((r for r in self.records(self.view.table_name(dom, entity)) if r.get(pk) == key), None)
                limit = (hit or {}).get(attr)
                if isinstance(limit, (int, float)) and not isinstance(limit, bool):
                    return limit
        return None

    def choose_value(
        self,
        slot: Slot,
        current: dict | None,
        rng: random.Random,
        filter_for: dict | None,
        user_id: Any,
        values: dict | None = None,
    ) -> Any:
        call = slot.calls[0] if slot.calls else None
        spec = self.column_spec(slot.table, slot.column, call)
        kind = self.refs[call].tool.kind if call is not None else "read"
        existing = [r.get(slot.column) for r in self.records(slot.table) if r.get(slot.column) is not None]
        if kind in ("search", "compute"):
            if filter_for is not None and filter_for.get(slot.column) is not None:
                return filter_for[slot.column]
            owner = self.owner_column(slot.table)
            mine = [
                r.get(slot.column)
                for r in self.records(slot.table)
                if r.get(slot.column) is not None and (owner is None or r.get(owner) == user_id)
            ]
            if not mine:
                raise NoInstance(f"no {slot.table}.{slot.column} value to filter on")
            return rng.choice(sorted(set(mine), key=str))
        avoid = current.get(slot.column) if current else None
        typ = spec.get("type")
        if spec.get("enum"):
            options = [v for v in spec["enum"] if v != avoid]
            if not options:
                raise NoInstance(f"no enum value for {slot.name} differs from the current one")
            return rng.choice(options)
        if typ in ("date", "datetime"):
            like = next((e for e in existing if isinstance(e, str)), None)
            return future_value(self.view.simulation_time, typ, rng, avoid, like)
        if typ in ("integer", "number"):
            lo = spec.get("minimum") if spec.get("minimum") is not None else (min(existing) if existing else 1)
            hi = spec.get("maximum") if spec.get("maximum") is not None else (max(existing) if existing else 100)
            limit = self.bound_limit(slot, current, values or {})  # guests at most the room's capacity
            if limit is not None:
                hi = min(hi, limit)
                if hi < lo:
                    raise NoInstance(f"{slot.name}: the referenced record allows at most {limit}, below {lo}")
            for _ in range(20):
                v = rng.randint(int(lo), int(hi)) if typ == "integer" else round(rng.uniform(float(lo), float(hi)), 2)
                if v != avoid:
                    return v
            raise NoInstance(f"no value in range for {slot.name}")
        if typ == "boolean":
            return (not avoid) if isinstance(avoid, bool) else True
        options = sorted({e for e in existing if isinstance(e, str) and e != avoid})
        if not options:
            raise NoInstance(f"no realistic value for {slot.name}")
        return rng.choice(options)

    # ------------------------------------------------------------- build
    @property
    def core_pk(self) -> str:
        p = self.refs[0].tool.parameters[0]
        return p.column or p.name

    def first_write(self) -> int | None:
        return next((i for i, r in enumerate(self.refs) if r.tool.kind in WRITE_KINDS), None)

    def refusal_rules(self) -> list[PolicyRule]:
        """Rules of the trajectory's first write that a refusal instance can break (it must
        also be the only write: what would follow a refused write is left undefined)."""
        k = self.first_write()
        if k is None or sum(r.tool.kind in WRITE_KINDS for r in self.refs) != 1:
            return []
        ref = self.refs[k]
        return task_kinds.refusal_rules(ref.tool.name, self.rules.get(ref.domain, {}))

    def build(self, user: dict, rng: random.Random, kind: str = "action", rule: PolicyRule | None = None) -> Instance:
        """One instance for ``user``; ``kind`` ``refusal`` breaks ``rule`` (a rule of the
        first write), ``auth_failure`` gives a mistyped ID (see :mod:`.task_kinds`)."""
        view = self.view
        core_pk = self.core_pk
        user_id = user[core_pk]
        values: dict[str, Any] = {}
        records: dict[str, dict] = {}
        chosen: dict[str, dict] = {}  # physical table -> chosen record (current, simulated)
        record_slots = [
            s for s in self.slots.values() if s.kind == "record" and (s.required or s.name in self.used)
        ]  # an optional filter the user never mentions stays empty
        value_slots = [s for s in self.slots.values() if s.kind == "value"]
        k = self.first_write()
        breaks = rule if kind == "refusal" else None
        for s in record_slots:
            if s.table not in self.tables:
                raise NoInstance(f"table {s.table} is not in the environment")
            if s.column == core_pk and s.table == self.refs[0].table:
                cands = [user]
            else:
                owner = self.owner_column(s.table)
                cands = [r for r in self.records(s.table) if owner is None or r.get(owner) == user_id]
            cands = list(cands)
            rng.shuffle(cands)
            ok = None
            violate = breaks is not None and breaks.kind in ("precondition", "window") and k in s.calls
            for rec in cands:
                if not self._source_ok(s, rec):
                    continue  # a link would hand over a value the other service refuses
                if violate:
                    trial = self._simulate(s, rec, upto=k)
                    if trial is None:
                        continue
                    if breaks.kind == "precondition" and not self._meets(self.refs[k].tool, trial):
                        ok = rec
                        break
                    if (
                        breaks.kind == "window"
                        and self._meets(self.refs[k].tool, trial)
                        and not self._in_window(breaks, trial)
                    ):
                        ok = rec
                        break
                    continue
                trial = self._simulate(s, rec)
                if trial is not None and all(self._in_window(w, rec) for w in self._windows(s)):
                    ok = rec
                    break
            if ok is None:
                if violate:
                    raise NoInstance(f"user {user_id} has no {s.table} record that breaks {breaks.id}")
                raise NoInstance(f"user {user_id} has no {s.table} record that every call on it accepts")
            values[s.name] = ok[s.column]
            chosen[s.table] = copy.deepcopy(ok)
            records[self._label(s.table)] = copy.deepcopy(ok)
        # values, in call order; updates see the simulated record (an existing one, or the
        # one a create earlier in the trajectory made)
        created: dict[str, dict] = {}
        for ref in self.refs:
            if ref.tool.kind == "create":
                created.setdefault(ref.table, dict(ref.tool.effects))
        filled: set[int] = set()  # update calls that got their fallback value
        for s in sorted(
            value_slots, key=lambda s: (s.calls[0] if s.calls else 0, self.fallback.get(s.name, (0, 0))[1])
        ):
            tool = self.refs[s.calls[0]].tool if s.calls else None
            fb = self.fallback.get(s.name)
            if fb is not None:
                if fb[0] in filled:
                    continue
            elif not s.required and s.name not in self.used:
                continue
            target = chosen.get(s.table)
            if tool is not None and tool.kind == "update" and target is None:
                target = created.get(s.table)
            current = target if tool is not None and tool.kind in ("update",) else None
            if fb is not None:
                try:
                    values[s.name] = self.choose_value(s, current, rng, target, user_id, values)
                except NoInstance:
                    continue  # try the call's next optional value
                filled.add(fb[0])
            elif (
                breaks is not None
                and breaks.kind != "precondition"
                and k in s.calls
                and self._param_of(k, s) == breaks.param
            ):
                values[s.name] = self.breaking_value(s, breaks, current, rng, values)
            else:
                values[s.name] = self.choose_value(s, current, rng, target, user_id, values)
            if tool is not None and tool.kind in ("update", "create") and target is not None:
                target[s.column] = values[s.name]
            elif tool is not None and tool.kind == "create" and s.table in created:
                created[s.table][s.column] = values[s.name]
        self._check_links(chosen, created, values)
        missing = {c for c, _ in self.fallback.values()} - filled
        if missing:
            raise NoInstance(f"no valid new value for update call(s) {sorted(missing)}: it would change nothing")
        self._check_created()
        # re-check preconditions with the chosen values written in call order
        for s in record_slots:
            upto = k if breaks is not None else None
            if s.table in chosen and self._simulate(s, records[self._label(s.table)], values, upto) is None:
                raise NoInstance(f"chosen values break a precondition on {s.table}")
        if (
            breaks is not None
            and breaks.param
            and not any(self._param_of(k, s) == breaks.param for s in value_slots if s.name in values and k in s.calls)
        ):
            raise NoInstance(f"the instruction gives no value for {breaks.param}, so it cannot break {breaks.id}")
        for name in self.used:
            s = self.slots.get(name)
            if s is not None and s.kind == "descriptor":
                rec = records.get(self._label(s.table))
                if rec is None or rec.get(s.column) is None:
                    raise NoInstance(f"descriptor {name} has no value")
                values[name] = rec[s.column]
        records.setdefault(self._label(self.refs[0].table), copy.deepcopy(user))
        self._add_referenced(records)
        states = self._states(values)
        calls = self._calls(values)
        calls, added = self._ground(calls, values, records, states, user_id)
        for table, col in sorted(added.items()):
            name = f"{self._label(table)}.{col}"
            values[name] = records[self._label(table)][col]
            states.append(name)
        refusal = None
        asks: list[str] = []
        if kind == "refusal":
            cut = next(i for i, c in enumerate(calls) if view.tool(c.name).tool.kind in WRITE_KINDS)
            ref = view.tool(calls[cut].name)
            refusal = ForbiddenCall(
                name=calls[cut].name,
                arguments=calls[cut].arguments,
                rule=breaks.id,
                domain=ref.domain,
                why=self._why(breaks, ref, records, values),
            )
            calls = calls[:cut]  # the golden path stops before the forbidden write
        elif kind == "auth_failure":
            taken = {str(r.get(core_pk)) for r in self.records(self.refs[0].table)}
            wrong = task_kinds.wrong_id(user_id, taken, rng)
            if wrong is None:
                raise NoInstance(f"no mistyped ID near {user_id}")
            slot = next(s.name for s in record_slots if s.column == core_pk and s.table == self.refs[0].table)
            values[slot] = wrong
            records[self._label(self.refs[0].table)] = {**records[self._label(self.refs[0].table)], core_pk: wrong}
            first = calls[0]
            calls = [
                first.model_copy(
                    update={"arguments": {**first.arguments, first_param(first): wrong}, "expect": "refused"}
                )
            ]
        elif kind == "lookup":
            last = self.refs[-1]
            stated = {self.slots[n].column for n in states if n in self.slots and self.slots[n].table == last.table}
            asks = task_kinds.choose_asks(last.tool.kind, self.descriptor_columns(last.table), stated, rng)
            if last.tool.kind in ("read", "search") and not asks:
                raise NoInstance(f"nothing of {last.table} to ask about that the user does not state")
        iid = io.sha256_json(
            {"env": view.env, "template": self.tpl.template_id, "values": values, "kind": kind}
            if kind != "action"
            else {"env": view.env, "template": self.tpl.template_id, "values": values}
        )[:16]
        return Instance(
            instance_id=iid,
            template_id=self.tpl.template_id,
            user_id=user_id,
            values=values,
            records=records,
            calls=calls,
            task_kind=kind,
            states=sorted(set(states)),
            asks=asks,
            refusal=refusal,
            links=self._instance_links(calls),
        )

    # ------------------------------------------------------------ kinds
    def _windows(self, slot: Slot) -> list[PolicyRule]:
        """The check-in window rules of the calls that act on ``slot``'s record."""
        out = []
        for i in slot.calls:
            ref = self.refs[i]
            if ref.table != slot.table:
                continue
            out += [r for r in self.rules.get(ref.domain, {}).get(ref.tool.name, []) if r.kind == "window"]
        return out

    def _in_window(self, rule: PolicyRule, rec: dict) -> bool:
        """``rec`` may be checked in now (the server's rule: see policy_rules, kind window)."""
        from agentskiller.steps.domains.data_rules import in_window

        col = rule.column or ""
        spec = self.column_spec(self._table_of(rule), col, None)
        now = _parse_time(self.view.simulation_time) if self.view.simulation_time else None
        if now is None:
            return True
        return in_window(spec.get("type") or "datetime", rec.get(col), now, float(rule.within_hours or 0))

    def _table_of(self, rule: PolicyRule) -> str:
        ref = next((r for r in self.refs if r.tool.name == rule.tool), None)
        return ref.table if ref is not None else str(rule.table)

    def _meets(self, tool, rec: dict) -> bool:
        return all(rec.get(c.column) in c.values for c in tool.preconditions)

    def _param_of(self, call: int, slot: Slot) -> str | None:
        for p in self.refs[call].tool.parameters:
            if (p.column or p.name) == slot.column:
                return p.name
        return None

    def breaking_value(
        self, slot: Slot, rule: PolicyRule, current: dict | None, rng: random.Random, values: dict
    ) -> Any:
        """A value the user asks for that ``rule`` forbids: one to three over the bound or the
        range's maximum, or a date 1-30 days before the simulation time."""
        if rule.kind == "bound":
            limit = self.bound_limit(slot, current, values)
            if limit is None:
                raise NoInstance(f"{slot.name}: no bounding record to exceed")
            return int(limit) + rng.randint(1, 3)
        if rule.kind == "range" and rule.maximum is not None:
            return int(rule.maximum) + rng.randint(1, 3)
        if rule.kind == "time" and rule.when == "future":
            base = (
                _parse_time(self.view.simulation_time)
                if self.view.simulation_time
                else dt.datetime(2025, 6, 2, tzinfo=dt.UTC)
            )
            day = base - dt.timedelta(days=rng.randint(1, 30))
            spec = self.column_spec(slot.table, slot.column, slot.calls[0] if slot.calls else None)
            if spec.get("type") == "date":
                return day.date().isoformat()
            return day.replace(hour=rng.choice(HOURS), minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise NoInstance(f"{rule.id}: no value breaks it")

    def _why(self, rule: PolicyRule, ref, records: dict, values: dict) -> str:
        if rule.kind == "precondition":
            rec = records.get(self._label(ref.table), {})
            parts = [
                f"{c['column']} to be {' or '.join(repr(v) for v in c['values'])}, and it is {rec.get(c['column'])!r}"
                for c in rule.conditions or []
                if rec.get(c["column"]) not in c["values"]
            ]
            return f"{ref.tool.name} needs " + "; ".join(parts)
        k = self.first_write()
        v = next(
            (
                values[n]
                for n, sl in self.slots.items()
                if n in values and sl.kind == "value" and k in sl.calls and self._param_of(k, sl) == rule.param
            ),
            None,
        )
        if rule.kind == "bound":
            return f"{rule.param} {v!r} is more than {rule.limit} allows"
        if rule.kind == "range":
            return f"{rule.param} {v!r} is above the maximum {rule.maximum:g}"
        if rule.kind == "time":
            return f"{rule.param} {v!r} is not after the current time"
        if rule.kind == "window":
            rec = records.get(self._label(ref.table), {})
            return f"check-in opens {rule.within_hours:g} hours before {rule.column} ({rec.get(rule.column)!r})"
        return f"{ref.tool.name}: {rule.param} breaks the {rule.kind} rule"

    # ------------------------------------------------------------ links
    def _source_ok(self, slot: Slot, rec: dict) -> bool:
        """A record a link reads its value from must hold one the target could take (a date
        that still lies ahead: the other service books nothing in the past)."""
        for lk in self.tpl.links:
            i = int(lk["from"]["call"])
            if i not in slot.calls or self.refs[i].table != slot.table:
                continue
            v = rec.get(lk["from"]["field"])
            if v is None:
                return False
            if isinstance(v, str) and _type_of(v) in ("date", "datetime") and self.view.simulation_time:
                if _parse_time(v if "T" in v else v + "T00:00:00") <= _parse_time(self.view.simulation_time):
                    return False
        return True

    def _link_value(self, lk: dict, chosen: dict[str, dict], created: dict[str, dict]) -> Any:
        """The value a link will hand over (None: only known at execution time)."""
        ref = self.refs[int(lk["from"]["call"])]
        rec = created.get(ref.table) if ref.tool.kind == "create" else chosen.get(ref.table)
        return (rec or {}).get(lk["from"]["field"])

    def _check_links(self, chosen: dict[str, dict], created: dict[str, dict], values: dict) -> None:
        """Create-then-validate: every linked value must be one the receiving call accepts
        (type, range, the bound another record sets, a future date, a real change for an
        update); s16 then proves it by execution."""
        for (j, pname), lk in sorted(self.fed.items()):
            v = self._link_value(lk, chosen, created)
            if v is None:
                continue
            ref = self.refs[j]
            p = next((q for q in ref.tool.parameters if q.name == pname), None)
            if p is None:
                raise NoInstance(f"link target {ref.name}.{pname} is no parameter")
            col = p.column or p.name
            spec = self.column_spec(ref.table, col, j)
            label = f"linked {ref.name}.{pname}={v!r}"
            if spec.get("enum") and v not in spec["enum"]:
                raise NoInstance(f"{label} is not one of {spec['enum']}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if spec.get("minimum") is not None and v < spec["minimum"]:
                    raise NoInstance(f"{label} is below the minimum {spec['minimum']}")
                if spec.get("maximum") is not None and v > spec["maximum"]:
                    raise NoInstance(f"{label} is above the maximum {spec['maximum']}")
                if p.type == "integer" and not float(v).is_integer():
                    raise NoInstance(f"{label} is no integer")
                probe = Slot(name=f"link:{pname}", kind="value", table=ref.table, column=col, calls=[j])
                limit = self.bound_limit(probe, chosen.get(ref.table) or created.get(ref.table), values)
                if limit is not None and v > limit:
                    raise NoInstance(f"{label} is more than the {limit} the referenced record allows")
            current = chosen.get(ref.table) if ref.tool.kind == "update" else None
            if current is not None and current.get(col) == v:
                raise NoInstance(f"{label} equals the current value: the update would change nothing")
            target = current if current is not None else created.get(ref.table) if ref.tool.kind == "create" else None
            if target is not None:
                target[col] = v

    def _instance_links(self, calls: list[GoldenCall]) -> list[dict]:
        """The template's links over the final golden calls (lookups inserted, a refusal
        cut): an equal link is the resolve rule of its target argument."""
        wanted = {(self.refs[j].name, pname): lk for (j, pname), lk in self.fed.items()}
        out = []
        for k, c in enumerate(calls):
            for pname, rule in sorted(c.resolve.items()):
                lk = wanted.get((c.name, pname))
                if lk is not None and rule.field == lk["from"]["field"]:
                    out.append(
                        {
                            "from": {"call": rule.call, "field": rule.field},
                            "to": {"call": k, "param": pname},
                            "relation": lk.get("relation", "equal"),
                        }
                    )
        return out

    def descriptor_columns(self, physical: str) -> list[tuple[str, str]]:
        """(column, type) of the attributes a person names a record of ``physical`` by."""
        for dom in self.view.domains:
            for rel in self.view.blueprints[dom].relationships:
                if self.view.table_name(dom, rel.name) == physical:
                    return [(c.name, c.type) for c in rel.columns if not c.references and c.name != rel.primary_key]
        recs = self.records(physical)
        out = []
        for col in _table_columns(self.view, physical):
            v = next((r.get(col) for r in recs if r.get(col) is not None), None)
            out.append((col, _type_of(v)))
        return out

    # ------------------------------------------------------------ grounding
    def _states(self, values: dict) -> list[str]:
        """What the user states: the slots the template's words use and the values the calls
        take (their own ID among them)."""
        out = [
            n
            for n in values
            if n in self.used or self.slots.get(n, Slot(name="", kind="value", table="", column="")).kind == "value"
        ]
        core = next(
            (
                s.name
                for s in self.slots.values()
                if s.kind == "record" and s.column == self.core_pk and s.table == self.refs[0].table
            ),
            None,
        )
        if core in values:
            out.append(core)
        out += [n for n in self.tpl.user_holds if n in values]
        return sorted(set(out))

    def _ground(
        self, calls: list[GoldenCall], values: dict, records: dict, states: list[str], user_id: Any
    ) -> tuple[list[GoldenCall], dict[str, str]]:
        """Insert the lookups the user's words call for (see :mod:`.lookups`)."""
        needs = []
        for i, ref in enumerate(self.refs):
            for p in ref.tool.parameters:
                s = self.slots.get(self._slot_for(i, p.column or p.name) or "")
                if s is None or s.kind != "record" or s.name not in values or s.name in states:
                    continue
                rec = records.get(self._label(s.table))
                if rec is None:
                    continue
                needs.append(lookups.Need(call=i, slot=s, record=rec))
        if not needs:
            return calls, {}

        def stated_columns(table: str) -> set[str]:
            return {
                self.slots[n].column
                for n in states
                if n in self.slots and self.slots[n].kind == "descriptor" and self.slots[n].table == table
            }

        try:
            return lookups.add_lookups(
                self.view,
                calls,
                needs,
                stated_columns,
                self.records,
                self.owner_column,
                lambda physical: [c for c in self.descriptor_columns(physical) if (physical, c[0]) not in self.hidden],
                user_id,
            )
        except LookupError as exc:
            raise NoInstance(str(exc)) from exc

    def _add_referenced(self, records: dict[str, dict]) -> None:
        """Add the records that the touched relationship rows point at (foreign keys to
        non-core entities), under their logical label; slot records keep their place."""
        for label in sorted(records):
            rec = records[label]
            for dom in self.view.domains:
                rel = self.view.blueprints[dom].relationship(label)
                if rel is None:
                    continue
                core = self.view.blueprints[dom].core_entity
                for col in rel.columns:
                    if not col.references or col.references == core or rec.get(col.name) is None:
                        continue
                    target = col.references
                    if target in records:
                        continue
                    table = self.view.table_name(dom, target)
                    pk = self.view.primary_key(dom, target)
                    hit = next((r for r in self.records(table) if r.get(pk) == rec[col.name]), None)
                    if hit is not None:
                        records[target] = copy.deepcopy(hit)

    def _check_created(self) -> None:
        """A record created in the trajectory starts with the create's effects; every later
        call on it must find its preconditions met (a fresh booking is ``scheduled``, so it
        cannot be deleted-when-cancelled without a cancel in between)."""
        state: dict[str, dict] = {}
        for i, ref in enumerate(self.refs):
            t = ref.tool
            if t.kind == "create":
                state[ref.table] = dict(t.effects)
                continue
            if ref.table not in state or t.kind in ("search", "compute"):
                continue
            for cond in t.preconditions:
                if cond.column in state[ref.table] and state[ref.table][cond.column] not in cond.values:
                    raise NoInstance(
                        f"the {ref.table} created earlier has {cond.column}="
                        f"{state[ref.table][cond.column]!r}, but call {i} ({t.name}) needs one of "
                        f"{cond.values}: the trajectory cannot succeed"
                    )
            if t.kind == "update":
                state[ref.table].update(t.effects)

    def _label(self, physical: str) -> str:
        from agentskiller.steps.tasks.task_env import _logical

        return _logical(self.view, physical)

    def _simulate(self, slot: Slot, rec: dict, values: dict | None = None, upto: int | None = None) -> dict | None:
        """Walk the calls that act on ``rec`` in order (those before ``upto`` only, when
        given); None when a precondition fails."""
        rec = copy.deepcopy(rec)
        for i in sorted(slot.calls):
            if upto is not None and i >= upto:
                break
            ref = self.refs[i]
            if ref.table != slot.table:
                continue
            t = ref.tool
            for cond in t.preconditions:
                if rec.get(cond.column) not in cond.values:
                    return None
            if t.kind == "delete":
                if i != max(slot.calls):
                    return None  # a later call would act on a deleted record
                continue
            if t.kind == "update":
                rec.update(t.effects)
                for p in t.parameters:
                    col = p.column or p.name
                    v = (values or {}).get(self._slot_for(i, col))
                    if v is not None and col != slot.column:
                        rec[col] = v
        return rec

    def _slot_for(self, call: int, column: str) -> str | None:
        for s in self.slots.values():
            if call in s.calls and s.column == column:
                return s.name
        return None

    def _calls(self, values: dict) -> list[GoldenCall]:
        created: dict[str, int] = {}
        out = []
        for i, ref in enumerate(self.refs):
            t = ref.tool
            pk = self.view.primary_key(ref.domain, t.table)
            args: dict[str, Any] = {}
            resolve: dict[str, Resolve] = {}
            for p in t.parameters:
                col = p.column or p.name
                lk = self.fed.get((i, p.name))
                if lk is not None:  # the other service's result hands it over at execution time
                    resolve[p.name] = Resolve(call=int(lk["from"]["call"]), field=lk["from"]["field"])
                    continue
                if t.kind == "create" and col == pk:
                    continue
                if col == pk and ref.table in created and t.kind not in ("search", "compute"):
                    resolve[p.name] = Resolve(call=created[ref.table], field=pk)
                    continue
                name = self._slot_for(i, col)
                if name is not None and name in values:
                    args[p.name] = values[name]
                elif p.required:
                    raise NoInstance(f"no value for required parameter {t.name}.{p.name}")
            out.append(GoldenCall(name=ref.name, arguments=args, resolve=resolve))
            if t.kind == "create":
                created[ref.table] = i
        return out


def linked_kinds(b: Builder, kinds: list[str]) -> list[str]:
    """A linked (cross-domain) template's task kinds: an ``auth_failure`` stops at the first
    call and a ``refusal`` before its first write, while a link always feeds a write, so
    neither would hand anything over; those become ``action`` tasks (single-domain envs keep
    them)."""
    return ["action" if k in ("auth_failure", "refusal") and b.fed else k for k in kinds]


def changes_created_record(view: EnvView, trajectory: list[str]) -> str | None:
    """The first update / delete on a record a create earlier in ``trajectory`` made."""
    created: set[str] = set()
    for name in trajectory:
        ref = view.tool(name)
        if ref.tool.kind in ("update", "delete") and ref.table in created:
            return f"{ref.name} changes the {ref.table} the task itself created"
        if ref.tool.kind == "create":
            created.add(ref.table)
    return None


def make_instances(
    view: EnvView,
    tables: dict[str, dict],
    template: TaskTemplate,
    kinds: list[str],
    rng: random.Random,
    rules: dict[str, dict[str, list[PolicyRule]]] | None = None,
) -> tuple[list[Instance], list[str]]:
    """One instance per entry of ``kinds`` (different users first; a refusal or
    auth failure this template cannot make becomes an action) and the reasons users failed."""
    b = Builder(view, tables, template, rules)
    core = b.refs[0].table
    if b.fed:
        kinds = linked_kinds(b, kinds)
    users = list(tables.get(core, {}).get("records", []))
    rng.shuffle(users)
    out: list[Instance] = []
    seen: set[str] = set()
    reasons: list[str] = []
    breakable = b.refusal_rules()
    for kind in kinds:
        attempts = [(kind, r) for r in breakable] if kind == "refusal" else [(kind, None)]
        if kind != "action":
            attempts.append(("action", None))
        made = None
        for try_kind, rule in attempts:
            for user in users:
                try:
                    inst = b.build(user, rng, try_kind, rule)
                except NoInstance as exc:
                    reasons.append(str(exc))
                    continue
                if inst.instance_id not in seen and inst.user_id not in {
                    o.user_id for o in out if o.task_kind == try_kind
                }:
                    made = inst
                    break
            if made is not None:
                break
        if made is not None:
            seen.add(made.instance_id)
            out.append(made)
    return out, reasons


def load_rules(paths: Any) -> dict[str, dict[str, list[PolicyRule]]]:
    """Member domain -> tool -> the rules its policy states and its server enforces."""
    from agentskiller.artifacts import as_paths

    out: dict[str, dict[str, list[PolicyRule]]] = {}
    for p in as_paths(paths):
        doc = artifacts.read(p)
        if doc.get("status") == "failed":
            continue
        rules = [PolicyRule.model_validate(r) for r in doc.get("rules", [])]
        out[doc["domain"]] = task_kinds.rules_by_tool(rules)
    return out


def run(ctx: StepContext) -> None:
    env = ctx.wildcards.get("env") or ctx.wildcards.get("domain")
    reason = failed_input(ctx.inputs, TASK_INPUTS, "s15")
    if reason:
        ctx.write_json(
            "instances",
            {
                "env": env,
                "status": "failed",
                "reason": reason,
                "templates": [],
                "instances": [],
                "skipped": [],
                "counts": {"templates": 0, "instances": 0, "skipped": 0},
            },
            SCHEMA,
        )
        return
    cfg = ctx.cfg.tasks
    n = cfg.samples_per_template
    view = EnvView.load(env, ctx.inputs["blueprint"], ctx.inputs["server_report"])
    tables = view.load_tables()
    rules = load_rules(ctx.inputs.get("policy_report"))
    data = artifacts.read(ctx.inputs["templates"])
    instances: list[dict] = []
    skipped: list[dict] = []
    accepted = [TaskTemplate.model_validate(t) for t in data.get("templates", []) if t["status"] == "accepted"]
    usable: list[TaskTemplate] = []
    for tpl in accepted:
        change = changes_created_record(view, tpl.trajectory)
        if change and not tpl.self_correction:
            skipped.append({"template_id": tpl.template_id, "reason": f"changes_created_record: {change}"})
            continue
        usable.append(tpl)
    writes = [t for t in usable if any(view.tool(x).tool.kind in WRITE_KINDS for x in t.trajectory)]
    plan = dict(zip((t.template_id for t in writes), task_kinds.plan_kinds(len(writes), n, cfg.kinds.as_dict())))
    corrections_left = int(cfg.self_correction_share * n * len(usable))
    for tpl in usable:
        kinds = plan.get(tpl.template_id) or ["lookup"] * n
        if changes_created_record(view, tpl.trajectory):
            if corrections_left <= 0:
                skipped.append(
                    {"template_id": tpl.template_id, "reason": "changes_created_record: self_correction_share reached"}
                )
                continue
            kinds = ["action"] * min(n, corrections_left)
            corrections_left -= len(kinds)
        got, reasons = make_instances(view, tables, tpl, kinds, ctx.rng(tpl.template_id), rules)
        instances += [i.model_dump() for i in got]
        if not got:
            skipped.append(
                {
                    "template_id": tpl.template_id,
                    "reason": "no user makes this template meaningful: " + (reasons[0] if reasons else "no users"),
                }
            )
    ctx.log.info("s15 %s: %d instances from %d templates, %d skipped", env, len(instances), len(accepted), len(skipped))
    # the templates travel with the instances: s16 and s17 read only the previous artifact
    history = {
        "s14": {
            "counts": data.get("counts", {}),
            "rejections": [
                {"template_id": t["template_id"], "status": t["status"], "reason": t["reason"]}
                for t in data.get("templates", [])
                if t["status"] != "accepted"
            ],
        },
        "s15": {
            "counts": {
                "templates": len(accepted),
                "instances": len(instances),
                "skipped": len(skipped),
                **{f"kind_{k}": sum(i["task_kind"] == k for i in instances) for k in TASK_KINDS},
            },
            "rejections": skipped,
        },
    }
    ctx.write_json(
        "instances",
        {
            "env": env,
            "status": "ok",
            "templates": [t.model_dump() for t in accepted],
            "history": history,
            "instances": instances,
            "skipped": skipped,
            "counts": {"templates": len(accepted), "instances": len(instances), "skipped": len(skipped)},
        },
        SCHEMA,
    )
