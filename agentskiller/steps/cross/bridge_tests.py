"""Contract tests of a pair's Bridge Rules: for each rule a violating call the pair server
refuses and a conforming call it accepts.

The rules come from :mod:`agentskiller.models.bridge_rules`; the pair server writes them into
its manifest and runs these tests in the sandboxed worker (one episode per test, each from a
fresh state) before the pair passes. Per rule:

* ``bridge.identity``: authorize one member as the person, then the other member as a
  *different* person: refused, citing the rule (both orders); the same person: accepted.
* ``bridge.authorization.<D>``: authorize only the other member, then call a read of D (and,
  where a member task gives valid arguments, a write of D): refused, citing the rule and
  changing nothing; after D's own authorization the read is accepted.
* ``bridge.separation.<D>``: both members authorized as one person, D's read tool with a
  record ID of the other member's tables (the same person's record where one exists):
  refused as unknown; with the person's own record of D's table: accepted.
* ``bridge.ordering.<tool>.<after>``: both authorized, ``tool`` before ``after``: refused,
  citing the rule; after a member task's golden calls up to ``after`` succeeded, ``tool`` is
  not refused by the ordering rule (its arguments come from a member task where one calls
  it, otherwise from its schema, so another rule may still refuse it).

A test is a list of calls and the expectation for its last call; every earlier call must
succeed. :func:`derive_tests` builds them, :func:`judge` reads the worker's records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentskiller import artifacts
from agentskiller.models.blueprint import Blueprint
from agentskiller.models.bridge_rules import NS, BridgeRule, separation_tool

Expect = Literal["refused", "ok", "not_this_rule"]


class NoTest(Exception):
    """No call can show this rule on this pair's data; the message says why."""


@dataclass
class BridgeTest:
    rule: str
    kind: Literal["violating", "conforming"]
    calls: list[dict]
    expect: Expect
    #: a refusal must cite this text (the rule id; ``unknown`` for separation)
    cites: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def episode(self, i: int) -> dict:
        return {"id": f"bridge{i:03d}", "calls": self.calls}


@dataclass
class PairData:
    """What the tests draw on: member blueprints, the pair's records, member tasks."""

    bps: dict[str, Blueprint]
    records: dict[str, tuple[str, list[dict]]]  # physical table -> (primary key, records)
    namespace: dict[str, dict[str, str]]
    core_key: str
    user: Any
    tasks: dict[str, list[dict]]  # member domain -> its s16 tasks (single-domain golden calls)

    @classmethod
    def load(cls, bps: list[Blueprint], manifest: dict, server_dir: Path, user: Any, tasks: dict[str, list[dict]]):
        records = {}
        for table, rel in manifest["tables"].items():
            data = artifacts.read((server_dir / rel).resolve())
            pk = data["primary_key"]
            records[table] = (pk, sorted(data.get("records") or [], key=lambda r: str(r.get(pk))))
        core = bps[0].core_entity
        return cls(
            bps={bp.domain: bp for bp in bps},
            records=records,
            namespace=manifest["namespace"],
            core_key=records[core][0],
            user=user,
            tasks=tasks,
        )

    def other(self, domain: str) -> str:
        return next(d for d in self.bps if d != domain)

    def auth(self, domain: str, person: Any) -> dict:
        bp = self.bps[domain]
        tool = bp.authorize_tool()
        param = next((p for p in tool.parameters if (p.column or p.name) == self.core_key), None) or next(
            (p for p in tool.parameters if p.required), None
        )
        if param is None:
            raise NoTest(f"{domain}.{tool.name}: no parameter for the person's {self.core_key}")
        return {"tool": f"{domain}{NS}{tool.name}", "arguments": {param.name: person}}

    def both(self, person: Any) -> list[dict]:
        return [self.auth(d, person) for d in sorted(self.bps)]

    def people(self) -> list[Any]:
        core = self.bps[next(iter(self.bps))].core_entity
        pk, recs = self.records[core]
        return [r[pk] for r in recs]

    def owned(self, domain: str, rel_name: str) -> list[tuple[Any, Any]]:
        """(owner, primary key) of each record of ``domain``'s relationship ``rel_name``."""
        bp = self.bps[domain]
        rel = bp.relationship(rel_name)
        fk = next((c.name for c in rel.columns if c.references == bp.core_entity), None) if rel else None
        pk, recs = self.records[self.namespace[domain][rel_name]]
        return [(r.get(fk), r[pk]) for r in recs] if fk else []

    def read_call(self, domain: str) -> tuple[Any, dict]:
        """(person, a read of ``domain`` that succeeds for that person)."""
        found = separation_tool(self.bps[domain])
        if found is not None:
            tool, param, rel = found
            mine = [k for owner, k in self.owned(domain, rel) if owner == self.user]
            anyone = [(owner, k) for owner, k in self.owned(domain, rel) if owner is not None]
            person, key = (self.user, mine[0]) if mine else (anyone[0] if anyone else (None, None))
            if person is not None:
                return person, {"tool": f"{domain}{NS}{tool}", "arguments": {param: key}}
        bp = self.bps[domain]
        for t in bp.tools:
            if t.kind in ("read", "search", "compute") and not any(p.required for p in t.parameters):
                return self.user, {"tool": f"{domain}{NS}{t.name}", "arguments": {}}
        raise NoTest(f"{domain}: no read tool a test can call")

    def golden_prefix(self, domain: str, tool: str) -> tuple[Any, list[dict], dict | None]:
        """From a member task of ``domain`` whose golden path calls ``tool``: (its person, its
        calls up to ``tool`` namespaced, the ``tool`` call), or (None, [], None). Only tasks whose
        calls up to there take no value from earlier results."""
        for t in self.tasks.get(domain, []):
            calls = t.get("golden_calls") or []
            names = [c.get("name") for c in calls]
            if tool not in names or (t.get("task_kind") or "action") not in ("action", "lookup"):
                continue
            if t.get("status") in ("invalid", "failed", "rejected"):
                continue
            k = names.index(tool)
            head = calls[: k + 1]
            if not head or any(
                "arguments" not in c or c.get("resolve") or (c.get("expect") or "ok") != "ok" for c in head
            ):
                continue
            person = next(iter(head[0].get("arguments", {}).values()), None)
            out = [{"tool": f"{domain}{NS}{c['name']}", "arguments": dict(c.get("arguments") or {})} for c in head]
            return person, out[:-1], out[-1]
        return None, [], None

    def write_call(self, domain: str) -> tuple[Any, dict] | None:
        """(person, a write of ``domain`` with arguments a member task of that person proved
        valid), or None."""
        bp = self.bps[domain]
        for t in bp.tools:
            if t.kind in ("create", "update", "delete"):
                person, _, call = self.golden_prefix(domain, t.name)
                if call is not None and person is not None:
                    return person, call
        return self.data_write_call(domain)

    def data_write_call(self, domain: str) -> tuple[Any, dict] | None:
        """(owner, an update or delete of ``domain`` that takes only a record's key, on a
        record of that owner that meets the tool's preconditions), or None."""
        for t in self.bps[domain].tools:
            if t.kind in ("update", "delete"):
                found = self.keyed_call(domain, t.name)
                if found is not None:
                    return found
        return None

    def keyed_call(self, domain: str, tool: str, person: Any = None) -> tuple[Any, dict] | None:
        """(owner, a call of ``tool`` on one record of its relationship table by key, a record
        of ``person`` (default: preferably the shared user's) that meets the tool's
        preconditions), or None when the tool takes more than the key or no record fits."""
        bp = self.bps[domain]
        t = next((x for x in bp.tools if x.name == tool), None)
        rel = bp.relationship(t.table) if t is not None else None
        if t is None or rel is None or len(t.parameters) != 1 or not t.parameters[0].required:
            return None
        param = t.parameters[0]
        if (param.column or param.name) != rel.primary_key:
            return None
        fk = next((c.name for c in rel.columns if c.references == bp.core_entity), None)
        if fk is None:
            return None
        pk, recs = self.records[self.namespace[domain][rel.name]]
        want = self.user if person is None else person
        for r in sorted(recs, key=lambda r: (r.get(fk) != want, str(r.get(pk)))):
            if r.get(fk) is None or (person is not None and r.get(fk) != person):
                continue
            if all(r.get(c.column) in c.values for c in t.preconditions):
                return r[fk], {"tool": f"{domain}{NS}{t.name}", "arguments": {param.name: r[pk]}}
        return None


def _placeholder(schema: dict) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    t = schema.get("type")
    if t == "integer":
        return int(schema.get("minimum", 1))
    if t == "number":
        return float(schema.get("minimum", 1))
    if t == "boolean":
        return True
    if t == "array":
        return []
    if t == "object":
        return {}
    return "x"


def schema_arguments(tool_list: list[dict], name: str) -> dict:
    fn = next((t["function"] for t in tool_list if t["function"]["name"] == name), None)
    if fn is None:
        raise NoTest(f"{name} is not in the pair's tool list")
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    return {p: _placeholder(props.get(p) or {}) for p in params.get("required") or []}


# ------------------------------------------------------------------ per kind
def identity_tests(rule: BridgeRule, d: PairData) -> list[BridgeTest]:
    others = [p for p in d.people() if p != d.user]
    if not others:
        raise NoTest("the person table has one record: no second person to authorize")
    a, b = sorted(d.bps)
    out = [
        BridgeTest(rule.id, "violating", [d.auth(x, d.user), d.auth(y, others[0])], "refused", rule.id)
        for x, y in ((a, b), (b, a))
    ]
    out.append(BridgeTest(rule.id, "conforming", d.both(d.user), "ok"))
    return out


def authorization_tests(rule: BridgeRule, d: PairData) -> list[BridgeTest]:
    dom = rule.domain or ""
    other = d.other(dom)
    person, read = d.read_call(dom)
    out = [
        BridgeTest(rule.id, "violating", [d.auth(other, person), read], "refused", rule.id, note="read"),
        BridgeTest(rule.id, "conforming", [d.auth(other, person), d.auth(dom, person), read], "ok"),
    ]
    write = d.write_call(dom)
    if write is not None:
        writer, call = write
        out.insert(1, BridgeTest(rule.id, "violating", [d.auth(other, writer), call], "refused", rule.id, note="write"))
    return out


def separation_tests(rule: BridgeRule, d: PairData) -> list[BridgeTest]:
    dom = rule.domain or ""
    found = separation_tool(d.bps[dom])
    if found is None:
        raise NoTest(f"{dom} has no read tool of one record by key")
    tool, param, rel = found
    own_keys = {k for _, k in d.owned(dom, rel)}
    mine = [(o, k) for o, k in d.owned(dom, rel) if o is not None]
    if not mine:
        raise NoTest(f"{dom}_{rel} has no record")
    person, key = next(((o, k) for o, k in mine if o == d.user), mine[0])
    other = d.other(dom)
    foreign = [(o, k) for r in d.bps[other].relationships for o, k in d.owned(other, r.name) if k not in own_keys]
    if not foreign:
        raise NoTest(f"{other} has no record whose key {dom} does not also use")
    _, fkey = next(((o, k) for o, k in foreign if o == person), foreign[0])
    name = f"{dom}{NS}{tool}"
    return [
        BridgeTest(
            rule.id, "violating", [*d.both(person), {"tool": name, "arguments": {param: fkey}}], "refused", "unknown"
        ),
        BridgeTest(rule.id, "conforming", [*d.both(person), {"tool": name, "arguments": {param: key}}], "ok"),
    ]


def ordering_tests(rule: BridgeRule, d: PairData, tool_list: list[dict]) -> list[BridgeTest]:
    tool, after = rule.tool or "", rule.after or ""
    tdom, tname = tool.split(NS, 1)
    adom, aname = after.split(NS, 1)
    person, head, after_call = d.golden_prefix(adom, aname)
    if after_call is None:
        found = d.keyed_call(adom, aname)
        if found is None:
            raise NoTest(f"neither a member task nor the data give {aname} arguments that succeed")
        person, after_call = found
        head = [d.auth(adom, person)]
    _, _, given = d.golden_prefix(tdom, tname)
    keyed = d.keyed_call(tdom, tname, person)
    call = given or (keyed[1] if keyed else {"tool": tool, "arguments": schema_arguments(tool_list, tool)})
    return [
        BridgeTest(rule.id, "violating", [*d.both(person), call], "refused", rule.id),
        BridgeTest(rule.id, "conforming", [*head, d.auth(tdom, person), after_call, call], "not_this_rule", rule.id),
    ]


def derive_tests(rules: list[BridgeRule], d: PairData, tool_list: list[dict]) -> tuple[list[BridgeTest], dict]:
    """(tests, {rule id: why no test}) for every rule."""
    tests: list[BridgeTest] = []
    missing: dict[str, str] = {}
    for r in rules:
        try:
            if r.kind == "identity":
                tests += identity_tests(r, d)
            elif r.kind == "authorization":
                tests += authorization_tests(r, d)
            elif r.kind == "separation":
                tests += separation_tests(r, d)
            else:
                tests += ordering_tests(r, d, tool_list)
        except NoTest as exc:
            missing[r.id] = str(exc)
    return tests, missing


def judge(test: BridgeTest, records: list[dict]) -> str:
    """Empty when the test passed, else what went wrong."""
    if len(records) != len(test.calls):
        return f"{len(records)} of {len(test.calls)} calls ran"
    *head, last = records
    for call, rec in zip(test.calls, head, strict=False):
        if not rec["ok"]:
            return f"setup call {call['tool']} failed: {rec['error']}"
    before = head[-1]["state_hash_after"] if head else None
    if test.expect == "ok":
        return "" if last["ok"] else f"{test.calls[-1]['tool']} was refused: {last['error']}"
    if test.expect == "not_this_rule":
        return (
            f"refused by the rule: {last['error']}" if (not last["ok"] and test.cites in (last["error"] or "")) else ""
        )
    if last["ok"]:
        return f"{test.calls[-1]['tool']} succeeded; the rule should refuse it"
    if last["error_type"] != "tool_error" or test.cites.lower() not in (last["error"] or "").lower():
        return f"refused, but not by the rule ({last['error_type']}: {last['error']})"
    if before is not None and last["state_hash_after"] != before:
        return "the refused call changed the state"
    return ""


__all__ = ["BridgeTest", "NoTest", "PairData", "derive_tests", "judge", "schema_arguments"]
