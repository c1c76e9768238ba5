"""The state of a run read from its ``outputs/`` tree: one :class:`EnvStatus` per env and the funnel.

Works on a finished run, on one still running and on one that was killed: a missing artifact
means "stage not reached", an unreadable one (a file being written by a non-atomic writer,
a truncated copy) is reported in the reason and never raised. The stage order is the DAG's:
a domain goes s04 (blueprint) .. s09 (server), a pair s10 (combinations) .. s13 and its pair
server, then every env goes s14 .. s17 and into the dataset.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .. import io

#: per-domain stages and the artifact that shows each one was reached
DOMAIN_STAGES: tuple[tuple[str, str], ...] = (
    ("s04", "blueprints/{env}.json"),
    ("s05", "tool_lists/{env}.json"),
    ("s06", "database/{env}/summary.json"),
    ("s07", "policies/{env}.json"),
    ("s08", "tool_graphs/{env}.json"),
    ("s09", "servers/{env}/report.json"),
)
#: per-pair stages (s10 is the pair's entry in cross/combinations.json)
PAIR_STAGES: tuple[tuple[str, str], ...] = (
    ("s11", "cross/{env}/tool_graph.json"),
    ("s12", "cross/{env}/database/summary.json"),
    ("s13", "cross/{env}/policy.json"),
    ("server", "cross/{env}/server/report.json"),
)
#: stages every env (domain or pair) goes through
TASK_STAGES: tuple[tuple[str, str], ...] = (
    ("s14", "task_templates/{env}.json"),
    ("s15", "instances/{env}.json"),
    ("s16", "tasks/{env}.json"),
    ("s17", "queries/{env}.jsonl"),
)

Status = Literal["ok", "quarantined", "dropped", "pruned"]


class EnvStatus(BaseModel):
    """One env (a domain or a pair), or an outline / pair candidate that never became one."""

    env: str
    kind: Literal["domain", "pair"]
    stage: str = "-"  # the furthest stage whose artifact exists ("-": none yet)
    status: Status = "ok"
    failed_at: str | None = None  # the stage whose artifact first says status: failed
    reason: str = ""
    tables: int | None = None
    server: Literal["passed", "failed"] | None = None  # s09 / the pair server: its report's status
    tests_passed: int | None = None
    tests_run: int | None = None
    templates: int | None = None  # accepted
    templates_rejected: int | None = None
    instances: int | None = None
    tasks: int | None = None  # valid
    tasks_invalid: int | None = None
    queries: int | None = None
    rows: int | None = None  # in dataset/train.jsonl
    tokens: int = 0  # prompt + completion tokens of this env's jobs (cache hits included)


class FunnelStage(BaseModel):
    stage: str
    label: str
    count: int
    lost: int = 0  # quarantined, dropped, pruned or rejected at this stage


class Reason(BaseModel):
    stage: str
    unit: str
    reason: str


class RunSummary(BaseModel):
    outputs: str
    funnel: list[FunnelStage] = Field(default_factory=list)
    envs: list[EnvStatus] = Field(default_factory=list)
    quarantined: list[Reason] = Field(default_factory=list)
    rejections: dict[str, dict[str, int]] = Field(default_factory=dict)  # step -> reason kind -> count
    trajectory_lengths: dict[str, int] = Field(default_factory=dict)  # golden calls per row -> rows
    unreadable: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------ tolerant reads
class _Reader:
    """Reads artifacts under one outputs dir, remembering what could not be read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unreadable: list[str] = []

    def _bad(self, note: str) -> None:
        if note not in self.unreadable:  # some artifacts are read twice (stage walk, rejections)
            self.unreadable.append(note)

    def json(self, rel: str) -> Any | None:
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return io.read_json(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._bad(f"{rel}: {exc}")
            return None

    def lines(self, rel: str) -> list[dict] | None:
        path = self.root / rel
        if not path.is_file():
            return None
        rows: list[dict] = []
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._bad(f"{rel}: {exc}")
            return None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                self._bad(f"{rel}: line {n} is not JSON")
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


def _failed(doc: Any) -> str | None:
    """The reason of an artifact that says it failed (``status`` failed; a server: not passed)."""
    if isinstance(doc, dict) and doc.get("status") == "failed":
        return str(doc.get("reason") or "failed")
    if isinstance(doc, list) and any(isinstance(r, dict) and r.get("status") == "failed" for r in doc):
        return next((str(r.get("reason")) for r in doc if isinstance(r, dict) and r.get("reason")), "failed")
    return None


def reason_kind(reason: Any) -> str:
    """A reason with its values and IDs masked, so that counts of the same kind add up."""
    text = str(reason or "unknown")
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", text)
    text = re.sub(r"\b[\w-]*(?:[A-Za-z_-]\d|\d[A-Za-z_-])[\w-]*\b", "<id>", text)
    text = re.sub(r"\b\d+\b", "<n>", text)
    return text[:160]


def pruned_sample(combos: Any) -> list[dict]:
    """The pruned pairs that ``cross/combinations.json`` lists with their reasons: its bounded
    sample (every pruned pair is counted in ``counts.pruned`` and ``pruned.by_reason``)."""
    pruned = combos.get("pruned") if isinstance(combos, dict) else None
    if isinstance(pruned, dict):
        return [p for p in pruned.get("sample") or [] if isinstance(p, dict)]
    return [p for p in pruned or [] if isinstance(p, dict)]  # an artifact of before the sample


def _count(doc: Any, key: str) -> int | None:
    if not isinstance(doc, dict):
        return None
    value = (doc.get("counts") or {}).get(key)
    return int(value) if isinstance(value, int) else None


# ------------------------------------------------------------------ per env
def _walk(env: EnvStatus, stages: tuple[tuple[str, str], ...], rd: _Reader, docs: dict[str, Any]) -> None:
    for stage, pattern in stages:
        rel = pattern.format(env=env.env)
        doc = rd.lines(rel) if rel.endswith(".jsonl") else rd.json(rel)
        if doc is None:
            continue
        docs[stage] = doc
        env.stage = stage  # stages run in DAG order, not strictly one after another: keep the furthest
        reason = _failed(doc)
        if reason and env.failed_at is None:
            env.status, env.failed_at, env.reason = "quarantined", stage, reason


def _fill_counts(env: EnvStatus, docs: dict[str, Any], rd: _Reader) -> None:
    tables_rel = f"database/{env.env}/tables.json" if env.kind == "domain" else f"cross/{env.env}/database/tables.json"
    tables = rd.json(tables_rel)
    if isinstance(tables, dict) and isinstance(tables.get("tables"), dict):
        env.tables = len(tables["tables"])
    server = docs.get("s09") if env.kind == "domain" else docs.get("server")
    if isinstance(server, dict):
        env.server = "passed" if server.get("status") == "passed" else "failed"
        if env.kind == "domain":
            env.tests_passed, env.tests_run = server.get("tests_passed"), server.get("tests_run")
        else:
            checks = [c for c in (server.get("checks") or {}).values() if isinstance(c, dict)]
            env.tests_passed, env.tests_run = (
                sum(bool(c.get("passed", c.get("tools_match"))) for c in checks),
                len(checks),
            )
    env.templates, env.templates_rejected = _count(docs.get("s14"), "accepted"), _count(docs.get("s14"), "rejected")
    env.instances = _count(docs.get("s15"), "instances")
    env.tasks, env.tasks_invalid = _count(docs.get("s16"), "valid"), _count(docs.get("s16"), "invalid")
    if isinstance(docs.get("s17"), list):
        env.queries = sum(1 for q in docs["s17"] if q.get("status") != "failed")


# ------------------------------------------------------------------ the whole run
def collect(outputs: str | Path, tokens_by_unit: dict[str, int] | None = None) -> RunSummary:
    """Everything the status table, the end-of-run summary and the report plots show."""
    root = Path(outputs)
    rd = _Reader(root)
    tokens_by_unit = tokens_by_unit or {}
    summary = RunSummary(outputs=str(root))
    topics = rd.json("topics.json")
    entities = rd.json("entities.json")
    outlines = rd.json("blueprints/outlines.json")
    combos = rd.json("cross/combinations.json")
    stats = rd.json("dataset/stats.json")
    train = rd.lines("dataset/train.jsonl")
    trajectories = rd.lines("dataset/trajectories.jsonl")

    envs: list[EnvStatus] = []
    domain_names = sorted(
        str(d.get("domain")) for d in (outlines or {}).get("domains", []) if isinstance(d, dict) and d.get("domain")
    )
    for dropped in (outlines or {}).get("dropped", []) or []:
        envs.append(
            EnvStatus(
                env=str(dropped.get("domain")),
                kind="domain",
                stage="s04",
                status="dropped",
                failed_at="s04",
                reason=str(dropped.get("reason") or ""),
            )
        )
    pair_names = sorted(str(p.get("pair")) for p in (combos or {}).get("pairs", []) if isinstance(p, dict))
    for pruned in pruned_sample(combos):
        name = pruned.get("pair") or "+".join(pruned.get("domains") or [])
        reason = f"{pruned.get('stage', '')}: {pruned.get('reason', '')}".strip(": ")
        envs.append(EnvStatus(env=str(name), kind="pair", stage="s10", status="pruned", failed_at="s10", reason=reason))

    rows_by_env: Counter = Counter(r.get("env") for r in train or [])
    per_env_stats = (stats or {}).get("per_env", {}) if isinstance(stats, dict) else {}
    for name, kind, stages in [
        *[(d, "domain", DOMAIN_STAGES) for d in domain_names],
        *[(p, "pair", (("s10", ""),) + PAIR_STAGES) for p in pair_names],
    ]:
        env = EnvStatus(env=name, kind=kind)  # type: ignore[arg-type]
        docs: dict[str, Any] = {}
        if kind == "pair":
            env.stage = "s10"
            stages = stages[1:]
        _walk(env, stages + TASK_STAGES, rd, docs)
        _fill_counts(env, docs, rd)
        if train is not None and isinstance(stats, dict):
            env.rows = rows_by_env.get(name, 0)
            if (per_env_stats.get(name) or {}).get("status") == "ok":
                env.stage = "dataset"  # a quarantined env keeps the stage its artifacts reached
        env.tokens = tokens_by_unit.get(name, 0)
        envs.append(env)
    summary.envs = sorted(envs, key=lambda e: (e.kind != "domain", e.env))

    for e in summary.envs:
        if e.status != "ok":
            summary.quarantined.append(Reason(stage=e.failed_at or e.stage, unit=e.env, reason=e.reason))
    summary.rejections = _rejections(root, summary.envs, rd)
    summary.funnel = _funnel(topics, entities, outlines, combos, summary, train, trajectories)
    summary.trajectory_lengths = _trajectory_lengths(train)
    summary.unreadable = rd.unreadable
    return summary


def _rejections(root: Path, envs: list[EnvStatus], rd: _Reader) -> dict[str, dict[str, int]]:
    """Rejected templates / instances / tasks per step and reason kind, from each env's latest history."""
    acc: dict[str, Counter] = {}
    for e in envs:
        if e.status in ("dropped", "pruned"):
            continue
        for stage in ("s16", "s15", "s14"):
            doc = rd.json(dict(TASK_STAGES)[stage].format(env=e.env))
            if not isinstance(doc, dict):
                continue
            history = doc.get("history") or {stage: {"rejections": _own_rejections(doc)}}
            for step, h in history.items():
                for r in (h or {}).get("rejections", []) or []:
                    acc.setdefault(step, Counter())[reason_kind(r.get("reason"))] += 1
            break
        if e.tasks is not None and e.queries is not None and e.tasks > e.queries:
            acc.setdefault("s17", Counter())["query failed the grounding / completeness checks"] += e.tasks - e.queries
    return {step: dict(c.most_common()) for step, c in sorted(acc.items())}


def _own_rejections(doc: dict) -> list[dict]:
    """s14 has no history yet: its rejected templates are in its own list."""
    return [t for t in doc.get("templates", []) or [] if isinstance(t, dict) and t.get("status") != "accepted"]


def _funnel(
    topics: Any,
    entities: Any,
    outlines: Any,
    combos: Any,
    summary: RunSummary,
    train: list[dict] | None,
    trajectories: list[dict] | None,
) -> list[FunnelStage]:
    envs = [e for e in summary.envs if e.status not in ("dropped", "pruned")]
    domains = [e for e in envs if e.kind == "domain"]
    pairs = [e for e in envs if e.kind == "pair"]
    out: list[FunnelStage] = []

    def add(stage: str, label: str, count: int | None, lost: int = 0) -> None:
        if count is not None:
            out.append(FunnelStage(stage=stage, label=label, count=count, lost=lost))

    def total(values: list[int | None]) -> int | None:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    def n(doc: Any, key: str) -> int | None:
        return len(doc.get(key) or []) if isinstance(doc, dict) else None

    add("s01", "topics", n(topics, "topics"), n(topics, "rejected") or 0)
    add("s02", "entities", n(entities, "entities"), n(entities, "rejected") or 0)
    if isinstance(outlines, dict):
        failed_s04 = sum(1 for d in domains if d.failed_at == "s04")
        add("s04", "domains (blueprints)", len(domains) - failed_s04, (n(outlines, "dropped") or 0) + failed_s04)
    servers = [d.server for d in domains if d.server]
    if servers:
        add("s09", "servers passed", servers.count("passed"), len(domains) - servers.count("passed"))
    if isinstance(combos, dict):
        add("s10", "pairs kept", len(pairs), int((combos.get("counts") or {}).get("pruned") or 0))
        pair_servers = [p.server for p in pairs if p.server]
        if pair_servers:
            add(
                "server", "pair servers passed", pair_servers.count("passed"), len(pairs) - pair_servers.count("passed")
            )
    add("s14", "task templates", total([e.templates for e in envs]), total([e.templates_rejected for e in envs]) or 0)
    add("s15", "instances", total([e.instances for e in envs]))
    add("s16", "tasks (verified)", total([e.tasks for e in envs]), total([e.tasks_invalid for e in envs]) or 0)
    queries = total([e.queries for e in envs])
    dropped_s17 = sum(max(0, e.tasks - e.queries) for e in envs if e.tasks is not None and e.queries is not None)
    add("s17", "queries", queries, dropped_s17)  # envs still before s17 lose nothing yet
    if train is not None:
        add("dataset", "dataset rows", len(train))
    if trajectories is not None:
        add("rollout", "trajectories", len(trajectories))
    return out


def _trajectory_lengths(train: list[dict] | None) -> dict[str, int]:
    lengths = Counter(len(r.get("golden_calls") or []) for r in train or [])
    return {str(k): v for k, v in sorted(lengths.items())}


def summary_schema() -> dict:
    """The JSON Schema of ``report/summary.json`` (a RunSummary plus ``usage`` totals and
    ``meta``), as stored in ``schemas/report_summary.schema.json``; a test keeps the two equal."""
    schema = RunSummary.model_json_schema()

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for v in node.values():
                close(v)
        elif isinstance(node, list):
            for v in node:
                close(v)

    close(schema)
    schema["properties"]["usage"] = {"type": "object", "description": "agentskiller.llm.usage.summarize totals"}
    schema["properties"]["meta"] = {"type": "object"}
    schema["required"] = sorted({*schema.get("required", []), "usage", "meta"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "report_summary.schema.json",
        "title": "Run summary (report_plots)",
        "description": "The funnel, every env's status and the quarantine and rejection reasons of a run.",
        **{k: v for k, v in schema.items() if k != "title"},
    }
