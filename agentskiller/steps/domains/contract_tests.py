"""Contract tests for a domain's tool code (step s09): the oracle the code model cannot edit.

Size: over 400 lines because one deriver per tool kind and contract; split up, the oracle would be scattered.

The tests are *derived*, deterministically, from the blueprint (tool kinds, tables, reads and
writes, parameters, preconditions, effects), the data (which user owns which records, what a
search or an aggregate must return) and the policy markers. They live here, not in the
generated files, so a model repairing its code cannot bend them.

A :class:`TestPlan` is a list of *episodes* (call sequences run on a fresh state each) and a
list of *tests*; a test names one episode and checks its per-call results. Several tests may
share one episode (a valid read is checked for "returns the record" and for "leaves the state
alone" separately, so the report says precisely what broke). All episodes of a round run in
ONE sandboxed worker process (``agentskiller.runtime.worker.execute_episodes``).

Per-call results from the worker: ``{"ok", "result", "error", "error_type",
"state_hash_after", "changed_tables"}`` (see ``runtime.environment.CallRecord``).
``error_type == "tool_error"`` is a refusal by the tool; ``"bad_arguments"`` (the runtime's
signature validation, e.g. a value outside a ``Literal``) also counts as a refusal where a
test sends an invalid value on purpose; ``crash``, ``non_json``, ``timeout`` are bugs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentskiller.models.blueprint import READ_ONLY_KINDS, WRITE_KINDS, Blueprint, Tool, ToolParam
from agentskiller.models.catalog import primary_key_for, snake_case
from agentskiller.models.policy_rules import PolicyRule, derive_rules
from agentskiller.steps.domains.rule_tests import (
    ACCEPTS,
    INVALID_ENUM,
    REFUSES,
    expect_same_refusal,
    format_cases,
    range_cases,
    time_cases,
    valid_moment,
    window_side,
)

#: values that no generated or seeded key can take (s06 keys look like ``PAT-001`` or
#: ``patient_n00001``); a tool must answer them with a ToolError
UNKNOWN_PREFIX = "no-such-"
SEARCH_LIMIT = 50

Check = Callable[[list[dict]], "str | None"]


# ---------------------------------------------------------------------------- data model
@dataclass
class Episode:
    id: str
    calls: list[dict]  # [{"tool": name, "arguments": {...}}]

    def as_json(self) -> dict:
        return {"id": self.id, "calls": self.calls}


@dataclass
class ContractTest:
    id: str
    description: str
    episode: str
    tool: str | None
    check: Check
    #: policy rule id -> "refuses" (a violating call the tool must refuse) or "accepts" (a
    #: call at the rule's edge the tool must allow): what this test proves
    proves: dict[str, str] = field(default_factory=dict)


@dataclass
class Base:
    """A call a tool must accept: who logs in, the arguments, the record it acts on."""

    user: Any
    args: dict
    record: dict | None = None


@dataclass
class TestPlan:
    episodes: list[Episode] = field(default_factory=list)
    tests: list[ContractTest] = field(default_factory=list)
    #: tests that could not be derived (no suitable record in the data), with the reason
    skipped: list[dict] = field(default_factory=list)
    #: the policy's rules the tests prove (see :func:`rule_table`)
    rules: list[PolicyRule] = field(default_factory=list)

    def episode_ids(self) -> set[str]:
        return {e.id for e in self.episodes}


@dataclass
class DomainData:
    """The initial tables as plain records: ``{table: (primary_key, [records])}``."""

    tables: dict[str, tuple[str, list[dict]]]

    def records(self, table: str) -> list[dict]:
        return sorted(self.tables.get(table, ("", []))[1], key=lambda r: sort_key(r.get(self.pk(table))))

    def pk(self, table: str) -> str:
        return self.tables[table][0] if table in self.tables else primary_key_for(table)

    def get(self, table: str, key: Any) -> dict | None:
        pk = self.pk(table)
        return next((r for r in self.tables.get(table, ("", []))[1] if r.get(pk) == key), None)

    def unknown_id(self, table: str) -> str:
        used = {str(r.get(self.pk(table))) for r in self.records(table)}
        n = 0
        while f"{UNKNOWN_PREFIX}{snake_case(table)}-{n}" in used:
            n += 1
        return f"{UNKNOWN_PREFIX}{snake_case(table)}-{n}"


def sort_key(k: Any) -> tuple[int, Any]:
    """The runtime's primary-key order: numbers numerically, everything else as text."""
    return (0, k) if isinstance(k, (int, float)) and not isinstance(k, bool) else (1, str(k))


# ---------------------------------------------------------------------- result helpers
def _call(tool: str, **arguments: Any) -> dict:
    return {"tool": tool, "arguments": arguments}


def _describe(res: dict) -> str:
    if res.get("ok"):
        text = json.dumps(res.get("result"), sort_keys=True, default=str)
        return f"ok, result {text[:300]}"
    return f"{res.get('error_type')}: {str(res.get('error'))[:300]}"


def _last(results: list[dict]) -> dict:
    return results[-1] if results else {"ok": False, "error_type": "NoResult", "error": "no result"}


def _setup_failed(results: list[dict]) -> str | None:
    """The calls before the one under test (authorization) must succeed."""
    for i, res in enumerate(results[:-1]):
        if not res.get("ok"):
            return f"setup call {i} failed: {_describe(res)}"
    return None


def _is_json(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False


def _record_from(result: Any, pk: str) -> dict | None:
    """The record in a result: the result itself or one level down (``{"record": {...}}``)."""
    if isinstance(result, dict):
        if pk in result:
            return result
        inner = [v for v in result.values() if isinstance(v, dict) and pk in v]
        if len(inner) == 1:
            return inner[0]
    return None


def _list_from(result: Any) -> list | None:
    """The list in a search result: the result itself or its one list-valued field."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=0.011)


# ------------------------------------------------------------------------------ checks
def expect_ok(extra: Callable[[Any], str | None] | None = None) -> Check:
    def check(results: list[dict]) -> str | None:
        if (bad := _setup_failed(results)) is not None:
            return bad
        res = _last(results)
        if not res.get("ok"):
            return f"expected success, got {_describe(res)}"
        if not _is_json(res.get("result")) or not isinstance(res.get("result"), (dict, list)):
            return f"result is not a JSON object or array: {res.get('result')!r:.200}"
        return extra(res.get("result")) if extra else None

    return check


REFUSAL = ("tool_error",)
#: a value the signature itself rules out may also be refused by argument validation
VALIDATION_REFUSAL = ("tool_error", "bad_arguments")


def expect_tool_error(no_change: bool = True, accepted: tuple[str, ...] = REFUSAL) -> Check:
    def check(results: list[dict]) -> str | None:
        if (bad := _setup_failed(results)) is not None:
            return bad
        res = _last(results)
        if res.get("ok"):
            return f"expected a ToolError refusal, but the call succeeded: {_describe(res)}"
        if res.get("error_type") not in accepted:
            return f"expected a ToolError refusal, got {_describe(res)}"
        if no_change and res.get("changed_tables"):
            return f"a refused call changed tables {res.get('changed_tables')}"
        return None

    return check


def expect_no_change() -> Check:
    def check(results: list[dict]) -> str | None:
        if (bad := _setup_failed(results)) is not None:
            return bad
        res = _last(results)
        if not res.get("ok"):
            return f"call failed, state not checked: {_describe(res)}"
        before = results[-2].get("state_hash_after") if len(results) > 1 else None
        if res.get("changed_tables"):
            return f"a read-only tool changed tables {res['changed_tables']}"
        if before is not None and res.get("state_hash_after") != before:
            return "a read-only tool changed the state hash"
        return None

    return check


def expect_writes_within(writes: list[str]) -> Check:
    allowed = set(writes)

    def check(results: list[dict]) -> str | None:
        if (bad := _setup_failed(results)) is not None:
            return bad
        res = _last(results)
        if not res.get("ok"):
            return f"call failed, state not checked: {_describe(res)}"
        changed = list(res.get("changed_tables") or [])
        if not changed:
            return "a successful write did not change the state"
        extra = sorted(set(changed) - allowed)
        if extra:
            return f"changed tables {extra} outside its declared writes {sorted(allowed)}"
        before = results[-2].get("state_hash_after") if len(results) > 1 else None
        if before is not None and res.get("state_hash_after") == before:
            return "changed_tables reported a change but the state hash is the same"
        return None

    return check


# ---------------------------------------------------------------------------- deriving
class _Deriver:
    def __init__(
        self,
        blueprint: Blueprint,
        data: DomainData,
        policy_sections: dict[str, str] | None,
        simulation_time: str,
        rules: list[PolicyRule] | None = None,
    ) -> None:
        self.bp = blueprint
        self.data = data
        self.policy = policy_sections or {}
        self.now = simulation_time or "2025-01-01T00:00:00Z"
        self.core = blueprint.core_entity
        self.core_pk = data.pk(self.core)
        self.auth = blueprint.authorize_tool()
        self.auth_param = self.auth.parameters[0].name if self.auth.parameters else self.core_pk
        self.plan = TestPlan(rules=list(rules if rules is not None else derive_rules(blueprint, {})))
        self.users = [r.get(self.core_pk) for r in data.records(self.core)]
        #: tool -> its rules; tool -> the call it must accept (what the rule tests vary)
        self.rules: dict[str, list[PolicyRule]] = {}
        for r in self.plan.rules:
            if r.tool:
                self.rules.setdefault(r.tool, []).append(r)
        self.bases: dict[str, Base] = {}

    # ---------------------------------------------------------------- building
    def episode(self, eid: str, calls: list[dict]) -> str:
        if eid not in self.plan.episode_ids():
            self.plan.episodes.append(Episode(eid, calls))
        return eid

    def test(
        self, tid: str, description: str, episode: str, tool: str | None, check: Check, proves: dict | None = None
    ) -> None:
        self.plan.tests.append(ContractTest(tid, description, episode, tool, check, dict(proves or {})))

    def rule(self, tool: Tool, kind: str, param: str | None = None) -> PolicyRule | None:
        return next((r for r in self.rules.get(tool.name, []) if r.kind == kind and r.param == param), None)

    def proves(self, tool: Tool, role: str, *kinds_params: tuple[str, str | None]) -> dict[str, str]:
        """rule id -> role for those of the tool's rules (kind, param) that exist."""
        return {r.id: role for kp in kinds_params if (r := self.rule(tool, *kp)) is not None}

    def accepted_by_valid(self, tool: Tool, args: dict) -> dict[str, str]:
        """The rules a valid call proves it accepts: the session, the owner, the status, the
        records its IDs name (the value rules get edge calls of their own)."""
        out = self.proves(tool, ACCEPTS, ("authorization", None), ("ownership", None), ("precondition", None))
        out.update(self.proves(tool, ACCEPTS, ("at_least_one", None)))
        out.update(self.proves(tool, ACCEPTS, *(("exists", p) for p in args)))
        return out

    def skip(self, tid: str, tool: str, reason: str) -> None:
        self.plan.skipped.append({"id": tid, "tool": tool, "reason": reason})

    def login(self, user: Any) -> list[dict]:
        return [_call(self.auth.name, **{self.auth_param: user})]

    # ---------------------------------------------------------------- the data
    def owner_column(self, table: str) -> str | None:
        if table == self.core:
            return self.core_pk
        rel = self.bp.relationship(table)
        if rel is None:
            return None
        return next((c.name for c in rel.columns if c.references == self.core), None)

    def owned_by_someone(self, table: str) -> list[dict]:
        """Records of ``table`` whose owner is an existing user, in key order."""
        owner = self.owner_column(table)
        users = set(self.users)
        return [r for r in self.data.records(table) if owner is None or r.get(owner) in users]

    def owner_of(self, table: str, rec: dict) -> Any:
        owner = self.owner_column(table)
        return rec.get(owner) if owner else (self.users[0] if self.users else None)

    def key_param(self, tool: Tool) -> ToolParam | None:
        pk = self.data.pk(tool.table)
        return next((p for p in tool.parameters if p.column == pk or p.name == pk), None)

    def meets(self, tool: Tool, rec: dict) -> bool:
        return all(rec.get(c.column) in c.values for c in tool.preconditions)

    def window_rules(self, tool: Tool) -> list[PolicyRule]:
        return [r for r in self.rules.get(tool.name, []) if r.kind == "window" and r.column]

    def column_type(self, table: str, column: str | None) -> str:
        rel = self.bp.relationship(table)
        col = rel.column(column or "") if rel else None
        return col.type if col is not None else "datetime"

    def outside_window(self, tool: Tool, rec: dict) -> str | None:
        """None when ``rec`` lies inside the check-in window of every window rule of ``tool``,
        else where its time lies instead (:func:`.rule_tests.window_side`)."""
        for r in self.window_rules(tool):
            side = window_side(r, self.column_type(tool.table, r.column), rec.get(r.column or ""), self.now)
            if side is not None:
                return side
        return None

    def column_values(self, table: str, column: str) -> list[Any]:
        seen: list[Any] = []
        for r in self.data.records(table):
            v = r.get(column)
            if v is not None and v not in seen:
                seen.append(v)
        return seen

    def bounds(self, tool: Tool, p: ToolParam) -> tuple[list[str] | None, float | None, float | None]:
        rel = self.bp.relationship(tool.table)
        col = rel.column(p.column) if (rel and p.column) else None
        enum = p.enum or (col.enum if col else None)
        lo = p.minimum if p.minimum is not None else (col.minimum if col else None)
        hi = p.maximum if p.maximum is not None else (col.maximum if col else None)
        return enum, lo, hi

    def reference_of(self, tool: Tool, p: ToolParam) -> str | None:
        rel = self.bp.relationship(tool.table)
        target = rel.foreign_keys().get(p.column or "") if rel else None
        if target is None and p.column and p.column != self.data.pk(tool.table):
            # an entity table's column named like another entity's key
            target = next((e for e in self.bp.entities if self.data.pk(e) == p.column), None)
        return target if target != self.core else None

    def valid_value(self, tool: Tool, p: ToolParam, avoid: Any = None) -> Any:
        """A value the tool must accept: from the data where possible, else from the
        declared enum / range / type; ``avoid`` (the record's current value) is skipped so
        an update really changes something."""
        enum, lo, hi = self.bounds(tool, p)
        target = self.reference_of(tool, p)
        candidates: list[Any] = []
        if target:
            candidates = [r.get(self.data.pk(target)) for r in self.data.records(target)]
        elif enum:
            candidates = list(enum)
        elif p.column:
            candidates = self.column_values(tool.table, p.column)
            if p.type in ("integer", "number"):
                candidates = [
                    v
                    for v in candidates
                    if isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and (lo is None or v >= lo)
                    and (hi is None or v <= hi)
                ]
        fallback = self.type_default(p, lo, hi)
        candidates = [c for c in candidates if not isinstance(c, (dict, list))] + [fallback]
        if p.type == "array":
            inner = [c for c in candidates[:-1] if c is not None]
            return inner[:1] or fallback
        for c in candidates:
            if c != avoid and c is not None:
                return c
        return candidates[0]

    def type_default(self, p: ToolParam, lo: float | None, hi: float | None) -> Any:
        if p.type == "integer":
            return int(math.ceil(lo)) if lo is not None else (int(hi) if hi is not None and hi < 1 else 1)
        if p.type == "number":
            return float(lo) if lo is not None else (float(hi) if hi is not None and hi < 1 else 1.0)
        if p.type == "boolean":
            return True
        if p.type == "date":
            return self.now[:10]
        if p.type == "datetime":
            return self.now
        if p.type == "array":
            return ["contract-test"] if (p.items or "string") == "string" else [1]
        return "contract test"

    # ----------------------------------------------------------------- per kind
    def derive(self) -> TestPlan:
        for tool in self.bp.tools:
            self.common(tool)
            getattr(self, f"derive_{tool.kind}")(tool)
            self.value_rule_tests(tool)
        return self.plan

    # ------------------------------------------------------------- the value rules
    def param(self, tool: Tool, name: str | None) -> ToolParam | None:
        return next((p for p in tool.parameters if p.name == name), None)

    def limit_of(self, rule: PolicyRule, tool: Tool, args: dict, record: dict | None) -> Any:
        """The bounding value of a bound rule: the attribute of the record the row's foreign key
        ``via`` names (from the arguments, else from the record the tool acts on)."""
        via = next((p for p in tool.parameters if (p.column or p.name) == rule.via), None)
        key = args.get(via.name) if via is not None and via.name in args else (record or {}).get(rule.via or "")
        entity, attr = (rule.limit or ".").split(".", 1)
        target = self.data.get(entity, key)
        value = (target or {}).get(attr)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def fit_rules(self, tool: Tool, args: dict, record: dict | None) -> None:
        """Make ``args`` keep the tool's value rules a data value may break: a date that must
        lie ahead, a number the referenced record bounds."""
        for r in self.rules.get(tool.name, []):
            p = self.param(tool, r.param)
            if p is None or p.name not in args:
                continue
            if r.kind == "time":
                args[p.name] = valid_moment(r, p.type, self.now)
            elif r.kind == "bound":
                limit = self.limit_of(r, tool, args, record)
                if limit is not None and isinstance(args[p.name], (int, float)) and args[p.name] > limit:
                    args[p.name] = int(limit) if p.type == "integer" else float(limit)

    def value_rule_tests(self, tool: Tool) -> None:
        """For each rule about one argument: the base call with that argument changed to each
        violating value (refused, nothing changes) and to each edge value (accepted)."""
        base = self.bases.get(tool.name)
        key = self.key_param(tool) if tool.kind != "create" else None
        for r in self.rules.get(tool.name, []):
            p = self.param(tool, r.param)
            if r.kind == "at_least_one" and base is not None and key is not None:
                self.rule_cases(tool, r, base, {key.name: base.args.get(key.name)}, [("no_values", None)], [], None)
                continue
            if p is None or p.type == "array" or tool.kind == "authorize" or (key is not None and p is key):
                continue
            if base is None:
                self.skip(f"{r.id}", tool.name, f"no call {tool.name} accepts to vary (see {tool.name}.valid)")
                continue
            args = dict(base.args)
            if p.name not in args:
                args[p.name] = self.valid_value(tool, p, avoid=(base.record or {}).get(p.column or ""))
                self.fit_rules(tool, args, base.record)
            refused, accepted = self.cases(tool, r, p, args, base)
            accept_types = VALIDATION_REFUSAL if r.kind == "enum" else REFUSAL
            self.rule_cases(tool, r, base, args, refused, accepted, p.name, accept_types)

    def cases(
        self, tool: Tool, r: PolicyRule, p: ToolParam, args: dict, base: Base
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """(refused, accepted) values of ``p`` for rule ``r``; may re-point ``args`` (a bound
        test picks a referenced record whose limit leaves room below the range's maximum)."""
        if r.kind == "enum":
            return [("invalid", INVALID_ENUM)], [("listed", (r.values or [args[p.name]])[-1])]
        if r.kind == "range":
            refused, accepted = range_cases(r, p.type == "integer")
            bound = self.rule(tool, "bound", p.name)
            limit = self.limit_of(bound, tool, args, base.record) if bound else None
            return refused, [(k, v) for k, v in accepted if limit is None or v <= limit]
        if r.kind == "format":
            return format_cases(r, args[p.name]), [("well_formed", args[p.name])]
        if r.kind == "not_empty":
            return [("empty", ""), ("blank", "   ")], [("text", args[p.name])]
        if r.kind == "time":
            return time_cases(r, p.type, self.now)
        if r.kind == "exists":
            return [("unknown", self.data.unknown_id(r.table or ""))], [("existing", args[p.name])]
        if r.kind == "bound":
            return self.bound_cases(tool, r, p, args, base)
        return [], []

    def bound_cases(
        self, tool: Tool, r: PolicyRule, p: ToolParam, args: dict, base: Base
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        _, lo, hi = self.bounds(tool, p)
        integer = p.type == "integer"
        step = 1 if integer else 0.01

        def fits(limit: Any) -> bool:
            return limit is not None and (hi is None or limit + step <= hi) and (lo is None or limit >= lo)

        limit = self.limit_of(r, tool, args, base.record)
        via = next((q for q in tool.parameters if (q.column or q.name) == r.via), None)
        if not fits(limit) and via is not None and via.name in args:
            entity, attr = (r.limit or ".").split(".", 1)
            for rec in self.data.records(entity):
                if fits(rec.get(attr)):
                    args[via.name] = rec.get(self.data.pk(entity))
                    limit = rec.get(attr)
                    break
        if not fits(limit):
            return [], []
        cast = int if integer else float
        return [("over_limit", cast(limit + step))], [("at_limit", cast(limit))]

    def rule_cases(
        self,
        tool: Tool,
        r: PolicyRule,
        base: Base,
        args: dict,
        refused: list[tuple[str, Any]],
        accepted: list[tuple[str, Any]],
        param: str | None,
        accept_types: tuple[str, ...] = REFUSAL,
    ) -> None:
        login = self.login(base.user) if tool.requires_auth else []
        for label, value in refused:
            call = {**args, param: value} if param else dict(args)
            eid = self.episode(f"{r.id}/{label}", login + [_call(tool.name, **call)])
            shown = f"{param}={value!r}" if param else "no value to change"
            self.test(
                f"{r.id}.refused_{label}",
                f"{tool.name} refuses {shown} ({r.kind} rule, {label.replace('_', ' ')}) with a ToolError",
                eid,
                tool.name,
                expect_tool_error(accepted=accept_types),
                {r.id: REFUSES},
            )
        for label, value in accepted:
            call = {**args, param: value} if param else dict(args)
            eid = self.episode(f"{r.id}/{label}", login + [_call(tool.name, **call)])
            self.test(
                f"{r.id}.accepted_{label}",
                f"{tool.name} accepts {param}={value!r} ({r.kind} rule, {label.replace('_', ' ')})",
                eid,
                tool.name,
                expect_ok(),
                {r.id: ACCEPTS},
            )

    def common(self, tool: Tool) -> None:
        """Authorization: every tool that needs it refuses without it."""
        if not tool.requires_auth or tool.kind == "authorize":
            return
        args = self.sample_args(tool)
        if args is None:
            return
        eid = self.episode(f"{tool.name}/no_auth", [_call(tool.name, **args)])
        self.test(
            f"{tool.name}.requires_auth",
            f"{tool.name} refuses with a ToolError when nobody is authorized",
            eid,
            tool.name,
            expect_tool_error(),
            self.proves(tool, REFUSES, ("authorization", None)),
        )

    def sample_args(self, tool: Tool) -> dict | None:
        """Plausible arguments for the no-authorization test (validity does not matter:
        a tool must check the session before anything else it could refuse)."""
        args: dict[str, Any] = {}
        key = self.key_param(tool)
        for p in tool.parameters:
            if not p.required:
                continue
            if key is not None and p is key:
                recs = self.owned_by_someone(tool.table)
                args[p.name] = recs[0].get(self.data.pk(tool.table)) if recs else self.data.unknown_id(tool.table)
            else:
                args[p.name] = self.valid_value(tool, p)
        return args

    def derive_authorize(self, tool: Tool) -> None:
        if not self.users:
            self.skip(f"{tool.name}.valid", tool.name, f"no {self.core} records")
            return
        user = self.users[0]
        eid = self.episode(f"{tool.name}/valid", self.login(user))
        self.test(
            f"{tool.name}.valid",
            f"{tool.name} accepts an existing {self.core} ({user})",
            eid,
            tool.name,
            expect_ok(),
            self.proves(tool, ACCEPTS, ("exists", self.auth_param)),
        )
        self.test(
            f"{tool.name}.read_only", f"{tool.name} leaves the tables unchanged", eid, tool.name, expect_no_change()
        )
        eid = self.episode(
            f"{tool.name}/unknown_id", [_call(tool.name, **{self.auth_param: self.data.unknown_id(self.core)})]
        )
        self.test(
            f"{tool.name}.unknown_id",
            f"{tool.name} refuses an unknown {self.core_pk} with a ToolError",
            eid,
            tool.name,
            expect_tool_error(),
            self.proves(tool, REFUSES, ("exists", self.auth_param)),
        )

    def keyed_records(self, tool: Tool) -> tuple[ToolParam, str, list[dict]] | None:
        """The tool's key parameter, its table's primary key and the records some user owns;
        None, with the skip recorded, when no parameter carries the key."""
        key = self.key_param(tool)
        pk = self.data.pk(tool.table)
        if key is None:
            self.skip(f"{tool.name}.valid", tool.name, f"no parameter carries the primary key {pk}")
            return None
        return key, pk, self.owned_by_someone(tool.table)

    def derive_read(self, tool: Tool) -> None:
        keyed = self.keyed_records(tool)
        if keyed is None:
            return
        key, pk, recs = keyed
        if not recs or not self.users:
            self.skip(f"{tool.name}.valid", tool.name, f"no {tool.table} records owned by a {self.core}")
            return
        rec = recs[0]
        user = self.owner_of(tool.table, rec)
        rid = rec.get(pk)
        eid = self.episode(f"{tool.name}/valid", self.login(user) + [_call(tool.name, **{key.name: rid})])

        def same_record(result: Any) -> str | None:
            got = _record_from(result, pk)
            if got is None:
                return f"result has no {pk}: {json.dumps(result, default=str)[:200]}"
            if got.get(pk) != rid:
                return f"asked for {pk}={rid!r}, got {got.get(pk)!r}"
            wrong = sorted(k for k in rec if k in got and got[k] != rec[k])
            missing = sorted(k for k in rec if k not in got)
            if wrong or missing:
                return f"record differs from the data: wrong {wrong}, missing {missing}"
            return None

        self.bases[tool.name] = Base(user, {key.name: rid}, rec)
        self.test(
            f"{tool.name}.valid",
            f"{tool.name} returns {tool.table} {rid} to its owner {user}",
            eid,
            tool.name,
            expect_ok(same_record),
            self.accepted_by_valid(tool, {key.name: rid}),
        )
        self.test(
            f"{tool.name}.read_only", f"{tool.name} leaves the tables unchanged", eid, tool.name, expect_no_change()
        )
        self.unknown_key_test(tool, key, user)
        self.foreign_owner_test(tool, key, recs)

    def unknown_key_test(self, tool: Tool, key: ToolParam, user: Any) -> None:
        args = {key.name: self.data.unknown_id(tool.table)}
        for p in tool.parameters:
            if p.required and p is not key:
                args[p.name] = self.valid_value(tool, p)
        self.fit_rules(tool, args, None)
        eid = self.episode(f"{tool.name}/unknown_id", self.login(user) + [_call(tool.name, **args)])
        self.test(
            f"{tool.name}.unknown_id",
            f"{tool.name} refuses an unknown {key.name} with a ToolError",
            eid,
            tool.name,
            expect_tool_error(),
            self.proves(tool, REFUSES, ("exists", key.name)),
        )

    def foreign_owner_test(self, tool: Tool, key: ToolParam, recs: list[dict]) -> None:
        """A record of another user must be refused (only for tables the user owns)."""
        owner = self.owner_column(tool.table)
        if owner is None or not tool.requires_auth:
            return
        pk = self.data.pk(tool.table)
        target = next((r for r in recs if self.meets(tool, r)), recs[0])
        stranger = next((u for u in self.users if u != target.get(owner)), None)
        if stranger is None:
            self.skip(f"{tool.name}.ownership", tool.name, f"only one {self.core} in the data")
            return
        args = {key.name: target.get(pk)}
        for p in tool.parameters:
            if p.required and p is not key:
                args[p.name] = self.valid_value(tool, p, avoid=target.get(p.column or ""))
        self.fit_rules(tool, args, target)
        eid = self.episode(f"{tool.name}/ownership", self.login(stranger) + [_call(tool.name, **args)])
        self.test(
            f"{tool.name}.ownership",
            f"{tool.name} refuses {tool.table} {target.get(pk)} to {stranger}, who does not own it",
            eid,
            tool.name,
            expect_tool_error(),
            self.proves(tool, REFUSES, ("ownership", None)),
        )
        if self.rule(tool, "ownership") is None or not any(r.kind == "privacy" for r in self.plan.rules):
            return
        unknown = {**args, key.name: self.data.unknown_id(tool.table)}
        eid = self.episode(
            f"{tool.name}/privacy",
            self.login(stranger) + [_call(tool.name, **args), _call(tool.name, **unknown)],
        )
        self.test(
            f"{tool.name}.privacy",
            f"{tool.name} refuses another person's {tool.table} {target.get(pk)} exactly like a missing one "
            f"({unknown[key.name]}): same error type and text apart from the ID",
            eid,
            tool.name,
            expect_same_refusal(target.get(pk), unknown[key.name]),
            {"global.privacy": REFUSES},
        )

    def filtered_variants(self, tool: Tool, sample: dict | None) -> list[tuple[str, dict]]:
        """(suffix, arguments): required filters from ``sample``; one variant without
        optional filters and one with the first optional filter set."""
        base: dict[str, Any] = {}
        for p in tool.parameters:
            if p.required:
                base[p.name] = (sample or {}).get(p.column) if p.column and sample else self.valid_value(tool, p)
        out = [("valid", base)]
        opt = next(
            (
                p
                for p in tool.parameters
                if not p.required
                and p.column
                and p.type != "array"
                and sample is not None
                and sample.get(p.column) is not None
            ),
            None,
        )
        if opt is not None:
            out.append(("filtered", {**base, opt.name: sample[opt.column]}))
        return out

    def expected_rows(self, tool: Tool, user: Any, args: dict) -> list[dict]:
        owner = self.owner_column(tool.table)
        rows = self.data.records(tool.table)
        if owner and tool.requires_auth:
            rows = [r for r in rows if r.get(owner) == user]
        for p in tool.parameters:
            if p.column and args.get(p.name) is not None:
                v = args[p.name]
                rows = [r for r in rows if (r.get(p.column) in v if p.type == "array" else r.get(p.column) == v)]
        return rows

    def scope_user_and_sample(self, tool: Tool) -> tuple[Any, dict | None]:
        recs = self.owned_by_someone(tool.table)
        if not recs:
            return (self.users[0] if self.users else None), None
        owner = self.owner_column(tool.table)
        return (recs[0].get(owner) if owner else self.users[0] if self.users else None), recs[0]

    def derive_search(self, tool: Tool) -> None:
        user, sample = self.scope_user_and_sample(tool)
        if user is None:
            self.skip(f"{tool.name}.valid", tool.name, f"no {self.core} records")
            return
        pk = self.data.pk(tool.table)
        for suffix, args in self.filtered_variants(tool, sample):
            expected = [r.get(pk) for r in self.expected_rows(tool, user, args)][:SEARCH_LIMIT]

            def same_rows(result: Any, expected: list = expected) -> str | None:
                rows = _list_from(result)
                if rows is None:
                    return f"expected a list of records, got {json.dumps(result, default=str)[:200]}"
                got = [r.get(pk) if isinstance(r, dict) else r for r in rows]
                if got != expected:
                    return f"expected {pk}s {expected[:20]} (sorted, at most {SEARCH_LIMIT}), got {got[:20]}"
                return None

            eid = self.episode(f"{tool.name}/{suffix}", self.login(user) + [_call(tool.name, **args)])
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(args.items())) or "no filters"
            self.test(
                f"{tool.name}.{suffix}",
                f"{tool.name} ({shown}) as {user} returns exactly the matching {tool.table} records "
                f"it may see, sorted by {pk}",
                eid,
                tool.name,
                expect_ok(same_rows),
                self.accepted_by_valid(tool, args),
            )
            if suffix == "valid":
                self.bases[tool.name] = Base(user, args, sample)
            if suffix == "valid":
                self.test(
                    f"{tool.name}.read_only",
                    f"{tool.name} leaves the tables unchanged",
                    eid,
                    tool.name,
                    expect_no_change(),
                )

    def derive_compute(self, tool: Tool) -> None:
        user, sample = self.scope_user_and_sample(tool)
        if user is None:
            self.skip(f"{tool.name}.valid", tool.name, f"no {self.core} records")
            return
        agg, col = tool.aggregate or "count", tool.aggregate_column
        for suffix, args in self.filtered_variants(tool, sample):
            rows = self.expected_rows(tool, user, args)
            nums = [
                r.get(col)
                for r in rows
                if col and isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool)
            ]
            if agg == "count" or not col:
                value: Any = len(rows)
            elif agg == "sum":
                value = sum(nums)
            elif agg == "avg":
                value = sum(nums) / len(nums) if nums else None
            else:
                value = (min if agg == "min" else max)(nums) if nums else None

            def same_value(result: Any, value: Any = value, count: int = len(rows)) -> str | None:
                if not isinstance(result, dict) or "value" not in result:
                    return f'expected {{"value": ..., "count": n}}, got {json.dumps(result, default=str)[:200]}'
                if not _close(result.get("value"), value):
                    return f"expected value {value!r} ({agg} over {count} records), got {result.get('value')!r}"
                if "count" in result and result.get("count") != count:
                    return f"expected count {count}, got {result.get('count')!r}"
                return None

            eid = self.episode(f"{tool.name}/{suffix}", self.login(user) + [_call(tool.name, **args)])
            shown = ", ".join(f"{k}={v!r}" for k, v in sorted(args.items())) or "no filters"
            self.test(
                f"{tool.name}.{suffix}",
                f"{tool.name} ({shown}) as {user} computes the {agg} from the data",
                eid,
                tool.name,
                expect_ok(same_value),
                self.accepted_by_valid(tool, args),
            )
            if suffix == "valid":
                self.bases[tool.name] = Base(user, args, sample)
            if suffix == "valid":
                self.test(
                    f"{tool.name}.read_only",
                    f"{tool.name} leaves the tables unchanged",
                    eid,
                    tool.name,
                    expect_no_change(),
                )

    def write_checks(
        self, tool: Tool, eid: str, what: str, extra: Callable[[Any], str | None] | None, args: dict
    ) -> None:
        self.test(
            f"{tool.name}.valid",
            f"{tool.name} {what}",
            eid,
            tool.name,
            expect_ok(extra),
            self.accepted_by_valid(tool, args),
        )
        self.test(
            f"{tool.name}.writes_declared",
            f"{tool.name} changes the state, and only its declared tables {sorted(tool.writes)}",
            eid,
            tool.name,
            expect_writes_within(tool.writes),
        )

    def derive_create(self, tool: Tool) -> None:
        if not self.users:
            self.skip(f"{tool.name}.valid", tool.name, f"no {self.core} records")
            return
        user = self.users[0]
        args = {p.name: self.valid_value(tool, p) for p in tool.parameters if p.required}
        self.fit_rules(tool, args, None)
        self.bases[tool.name] = Base(user, args)
        owner = self.owner_column(tool.table)
        expected = {p.column: args[p.name] for p in tool.parameters if p.column and p.name in args}
        expected.update(tool.effects)
        if owner and tool.requires_auth:
            expected[owner] = user
        pk = self.data.pk(tool.table)

        def created(result: Any) -> str | None:
            rec = _record_from(result, pk)
            if rec is None:
                return f"expected the new record with its {pk}, got {json.dumps(result, default=str)[:200]}"
            wrong = {k: rec.get(k) for k, v in sorted(expected.items()) if not _close(rec.get(k), v)}
            if wrong:
                return f"new record has wrong values {wrong}; expected {expected}"
            return None

        eid = self.episode(f"{tool.name}/valid", self.login(user) + [_call(tool.name, **args)])
        self.write_checks(tool, eid, f"creates a {tool.table} record for {user} with {sorted(args)}", created, args)

    def derive_update(self, tool: Tool) -> None:
        self.derive_record_write(tool)

    def derive_delete(self, tool: Tool) -> None:
        self.derive_record_write(tool)

    def derive_record_write(self, tool: Tool) -> None:
        keyed = self.keyed_records(tool)
        if keyed is None:
            return
        key, pk, recs = keyed
        suitable = [r for r in recs if self.meets(tool, r)]
        # a check-in acts only inside its window: the call it must accept takes a record there
        usable = [r for r in suitable if self.outside_window(tool, r) is None]
        if not usable or not self.users:
            window = " and lies inside its check-in window" if suitable and self.window_rules(tool) else ""
            self.skip(
                f"{tool.name}.valid",
                tool.name,
                f"no {tool.table} record owned by a {self.core} meets the preconditions{window}",
            )
        else:
            rec = usable[0]
            user = self.owner_of(tool.table, rec)
            rid = rec.get(pk)
            args = {key.name: rid}
            for p in tool.parameters:
                # an update also gets its optional column values: a call without any new
                # value may rightly be refused ("nothing to update")
                if p is not key and (p.required or (tool.kind == "update" and p.column)):
                    args[p.name] = self.valid_value(tool, p, avoid=rec.get(p.column or ""))
            self.fit_rules(tool, args, rec)
            self.bases[tool.name] = Base(user, args, rec)
            eid = self.episode(f"{tool.name}/valid", self.login(user) + [_call(tool.name, **args)])
            if tool.kind == "update":
                expected = {
                    p.column: args[p.name] for p in tool.parameters if p.column and p.name in args and p is not key
                }
                expected.update(tool.effects)

                def updated(result: Any, expected: dict = expected, rid: Any = rid) -> str | None:
                    got = _record_from(result, pk)
                    if got is None:
                        return f"expected the updated record, got {json.dumps(result, default=str)[:200]}"
                    if got.get(pk) != rid:
                        return f"updated {pk}={rid!r} but returned {got.get(pk)!r}"
                    wrong = {k: got.get(k) for k, v in sorted(expected.items()) if not _close(got.get(k), v)}
                    return f"updated record has wrong values {wrong}; expected {expected}" if wrong else None

                self.write_checks(tool, eid, f"updates {tool.table} {rid} of its owner {user}", updated, args)
            else:
                self.write_checks(tool, eid, f"deletes {tool.table} {rid} of its owner {user}", None, args)
            self.unknown_key_test(tool, key, user)
        if recs:
            # a record the tool would otherwise accept, so that only the owner check can refuse it
            self.foreign_owner_test(tool, key, usable + [r for r in recs if r not in usable])
        self.precondition_test(tool, key, recs)
        self.window_tests(tool, key, suitable)

    def window_tests(self, tool: Tool, key: ToolParam, suitable: list[dict]) -> None:
        """A check-in window: the valid call (a record inside the window) is accepted; a record
        of the user that meets the preconditions but lies outside the window (one per side:
        too early, already passed) is refused and nothing changes."""
        pk = self.data.pk(tool.table)
        for r in self.window_rules(tool):
            hours = f"{r.within_hours or 0:g}"
            span = f"from the current time {self.now} to {hours} hours later"
            base = self.bases.get(tool.name)
            if base is not None and base.record is not None:
                self.test(
                    f"{r.id}.accepted_inside",
                    f"{tool.name} accepts {tool.table} {base.record.get(pk)}, whose {r.column} "
                    f"{base.record.get(r.column or '')} lies inside the check-in window ({span})",
                    f"{tool.name}/valid",
                    tool.name,
                    expect_ok(),
                    {r.id: ACCEPTS},
                )
            sides: dict[str, dict] = {}
            for rec in suitable:
                side = window_side(r, self.column_type(tool.table, r.column), rec.get(r.column or ""), self.now)
                if side in ("too_early", "passed"):
                    sides.setdefault(side, rec)
            if not sides:
                self.skip(
                    f"{r.id}.refused_outside",
                    tool.name,
                    f"no {tool.table} record that meets the preconditions lies outside the check-in window",
                )
            for side, rec in sorted(sides.items()):
                user = self.owner_of(tool.table, rec)
                args = {key.name: rec.get(pk)}
                for p in tool.parameters:
                    if p.required and p is not key:
                        args[p.name] = self.valid_value(tool, p, avoid=rec.get(p.column or ""))
                self.fit_rules(tool, args, rec)
                eid = self.episode(f"{r.id}/{side}", self.login(user) + [_call(tool.name, **args)])
                self.test(
                    f"{r.id}.refused_{side}",
                    f"{tool.name} refuses {tool.table} {rec.get(pk)} of {user}, which meets its preconditions but "
                    f"whose {r.column} {rec.get(r.column or '')} lies outside the check-in window ({span}), "
                    "with a ToolError",
                    eid,
                    tool.name,
                    expect_tool_error(),
                    {r.id: REFUSES},
                )

    def precondition_test(self, tool: Tool, key: ToolParam, recs: list[dict]) -> None:
        """A record that fails the preconditions must be refused: one from the data, or else one
        that another write of the same table (a cancel before a reschedule) has just moved out
        of the required status."""
        if not tool.preconditions:
            return
        pk = self.data.pk(tool.table)
        violating = [r for r in recs if not self.meets(tool, r)]
        setup: list[dict] = []
        # with a check-in window, a record inside it: then only the precondition can refuse it
        inside = [r for r in violating if self.outside_window(tool, r) is None]
        moved = None
        if self.window_rules(tool) and not inside:
            moved = self.moved_out(tool, [r for r in recs if self.outside_window(tool, r) is None])
        if inside or (violating and moved is None):
            rec = (inside or violating)[0]
        else:
            moved = moved or self.moved_out(tool, recs)
            if moved is None:
                self.skip(f"{tool.name}.precondition", tool.name, "no record violates the preconditions")
                return
            rec, setup = moved
        user = self.owner_of(tool.table, rec)
        args = {key.name: rec.get(pk)}
        for p in tool.parameters:
            if p.required and p is not key:
                args[p.name] = self.valid_value(tool, p, avoid=rec.get(p.column or ""))
        self.fit_rules(tool, args, rec)
        conds = "; ".join(f"{c.column} in {c.values}" for c in tool.preconditions)
        eid = self.episode(f"{tool.name}/precondition", self.login(user) + setup + [_call(tool.name, **args)])
        how = f" after {setup[0]['tool']}" if setup else ""
        self.test(
            f"{tool.name}.precondition",
            f"{tool.name} refuses {tool.table} {rec.get(pk)}{how}, which fails its preconditions ({conds})",
            eid,
            tool.name,
            expect_tool_error(),
            self.proves(tool, REFUSES, ("precondition", None)),
        )

    def moved_out(self, tool: Tool, recs: list[dict]) -> tuple[dict, list[dict]] | None:
        """(a record, the call of another write that leaves it failing ``tool``'s preconditions)."""
        pk = self.data.pk(tool.table)
        for other in self.bp.tools:
            if other is tool or other.kind != "update" or other.table != tool.table:
                continue
            after = dict(other.effects)
            if not any(c.column in after and after[c.column] not in c.values for c in tool.preconditions):
                continue
            okey = self.key_param(other)
            for rec in recs:
                if okey is None or not self.meets(other, rec) or not self.meets(tool, rec):
                    continue
                args = {okey.name: rec.get(pk)}
                for p in other.parameters:
                    if p is not okey and p.required:
                        args[p.name] = self.valid_value(other, p, avoid=rec.get(p.column or ""))
                self.fit_rules(other, args, rec)
                return rec, [_call(other.name, **args)]
        return None


def derive_tests(
    blueprint: Blueprint,
    data: DomainData,
    policy_sections: dict[str, str] | None = None,
    simulation_time: str = "",
    rules: list[PolicyRule] | None = None,
) -> TestPlan:
    """The contract tests of one domain (deterministic for the same inputs); ``rules``: the
    policy's rules (s07's report), by default derived from the blueprint alone."""
    return _Deriver(blueprint, data, policy_sections, simulation_time, rules).derive()


# ------------------------------------------------------------------------- evaluating
def evaluate(plan: TestPlan, episode_results: dict[str, Any]) -> list[dict]:
    """``episode_results``: episode id -> list of per-call results, or an error string
    when the episode could not run at all (the worker died, timed out ...)."""
    out = []
    for t in plan.tests:
        res = episode_results.get(t.episode)
        if res is None:
            detail: str | None = "episode produced no result (worker crashed or timed out)"
        elif isinstance(res, str):
            detail = f"episode could not run: {res}"
        else:
            try:
                detail = t.check(res)
            except Exception as exc:  # a checker bug must not read as a tool bug
                detail = f"checker error: {type(exc).__name__}: {exc}"
        out.append(
            {"id": t.id, "description": t.description, "tool": t.tool, "passed": detail is None, "detail": detail or ""}
        )
    return out


def tool_list_test(
    expected: list[dict], actual: list[dict] | None, differences: list[str] | None, load_error: str = ""
) -> dict:
    """The signature test: the tool list built from the code equals the s05 tool list."""
    if actual is None:
        detail = f"the tool module could not be loaded: {load_error}" if load_error else "no tools loaded"
    else:
        detail = "; ".join(differences or [])
    return {
        "id": "tool_list.match",
        "description": "the tool list built from the code's signatures equals tool_lists/{domain}.json",
        "tool": None,
        "passed": not detail,
        "detail": detail,
    }


def summarize_failures(results: list[dict], limit: int = 40) -> list[dict]:
    """The failing tests as the repair prompt and the report show them."""
    return [
        {"id": r["id"], "description": r["description"], "tool": r.get("tool"), "detail": r["detail"]}
        for r in results
        if not r["passed"]
    ][:limit]


__all__ = [
    "ContractTest",
    "DomainData",
    "Episode",
    "TestPlan",
    "derive_tests",
    "evaluate",
    "tool_list_test",
    "summarize_failures",
    "READ_ONLY_KINDS",
    "WRITE_KINDS",
]
