"""s06 database: seeded generator scripts written by the code model, run in the sandbox,
their output checked in code, repaired within a budget.

Two jobs:

* :func:`run_entity` (wildcard ``entity``): one entity table, shared by every domain that
  uses the entity: ``database/entities/{entity}.json`` + the script that made it,
  ``database/scripts/entities/{entity}.py``.
* :func:`run_domain` (wildcard ``domain``): one table per relationship of the blueprint,
  whose foreign keys are sampled from the entity tables: ``database/{domain}/`` holds
  ``<Relationship>.json``, ``scripts/<Relationship>.py``, the manifest ``tables.json`` (every
  table of the domain -> file, relative) and ``summary.json`` (statistics computed from the
  data, per table and column, with each table file's sha256).

For each table the code model gets the definition, the record count, a seed and the
simulation time, and answers with a script; the script runs in the sandbox (its own
directory, with copies of the entity tables it needs), and its output is checked by
:mod:`.data_checks`. Problems (a crash, a timeout, a wrong count, a broken FK ...) go back
to the model as a repair request through the LLM client's correction loop, up to
``database.max_repair_rounds``. A table that never passes is quarantined: the table file
says ``status: failed`` with the reason, and a domain with such a table writes a failed
summary and no tables.

Size: over 400 lines because both jobs share the script-run-check-repair loop and its
feedback texts; splitting them would leave two halves that only make sense together.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import blueprint_or_reason, load_entities, upstream_reason
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.blueprint import Blueprint, Relationship
from agentskiller.models.catalog import Entity
from agentskiller.models.policy_rules import derive_rules
from agentskiller.prompts import render
from agentskiller.runtime.sandbox import SandboxSettings, run_sandboxed
from agentskiller.steps.domains import data_checks as dc
from agentskiller.steps.domains import data_rules

SCRIPT_NAME = "generate.py"
OUTPUT_NAME = "output.json"
#: lines of the script's stderr shown to the model when it fails
STDERR_LINES = 15


# ------------------------------------------------------------------- loading inputs
def table_seed(seed: int, *parts: str) -> int:
    """Per-table seed: stable, independent of the order jobs run in."""
    return int(io.sha256_json([int(seed), "s06", *parts])[:8], 16) % (2**31 - 1)


# ------------------------------------------------------------------ one table, for real
@dataclass
class TableResult:
    status: str  # ok | failed
    records: list[dict] = field(default_factory=list)
    script: str = ""
    rounds: list[dict] = field(default_factory=list)
    reason: str = ""


def _sandbox_kwargs(config: dict) -> dict[str, Any]:
    return SandboxSettings.from_config(config["sandbox"]).kwargs()


def run_generator(code: str, inputs: dict[str, Path], sandbox: dict[str, Any]) -> tuple[list[dict] | None, list[str]]:
    """Run one generator script in the sandbox -> (records, problems).

    ``inputs``: entity name -> table file; copied into the sandbox as ``tables/<name>.json``
    and passed as ``Name=tables/<name>.json`` after the output path.
    """
    files: dict[str, Any] = {SCRIPT_NAME: code}
    argv = [sys.executable, SCRIPT_NAME, OUTPUT_NAME]
    for name, path in sorted(inputs.items()):
        files[f"tables/{name}.json"] = Path(path)
        argv.append(f"{name}=tables/{name}.json")
    res = run_sandboxed(argv, files=files, collect=[OUTPUT_NAME], **sandbox)
    if not res.ok:
        tail = "\n".join(res.stderr.strip().splitlines()[-STDERR_LINES:])
        problems = [f"the script {res.describe()}"]
        if tail:
            problems.append(f"stderr (last lines):\n{tail}")
        return None, problems
    raw = res.files.get(OUTPUT_NAME)
    if raw is None:
        return None, [
            f"the script exited normally but wrote no file at the output path given as sys.argv[1] ({OUTPUT_NAME})"
        ]
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"the output file is not valid JSON: {exc}"]
    records, problem = dc.load_records(data)
    return (records, []) if problem is None else (None, [problem])


def _one_line(problem: str, limit: int = 300) -> str:
    """A multi-line problem (message + stderr tail) folded into one line for a reason."""
    text = " | ".join(line.strip() for line in problem.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def generate_table(
    ctx: StepContext,
    task: str,
    prompt: str,
    context: dict,
    spec: dc.TableSpec,
    count: int,
    inputs: dict[str, Path] | None = None,
    fk_values: dict[str, set] | None = None,
    ref_records: dict[str, dict[Any, dict]] | None = None,
) -> TableResult:
    """Ask for a generator script, run and check it, repair within the budget.

    ``ref_records``: the referenced entity tables' records by primary key (``at_most`` bounds)."""
    sandbox = _sandbox_kwargs(ctx.config)
    sim_time = ctx.cfg.simulation_time
    max_rounds = ctx.cfg.database.max_repair_rounds
    result = TableResult(status="failed")

    def check(code: str) -> list[str]:
        t0 = time.monotonic()
        result.script = code
        records, problems = run_generator(code, inputs or {}, sandbox)
        if records is not None:
            problems = dc.check_records(records, spec, count, fk_values, sim_time, ref_records)
        # the duration goes to the log only: artifacts must not depend on timing
        result.rounds.append({"round": len(result.rounds), "errors": problems})
        if not problems:
            result.records = records or []
        ctx.log.info(
            "%s: round %d (%.2f s): %s",
            spec.name,
            len(result.rounds) - 1,
            time.monotonic() - t0,
            "ok" if not problems else f"{len(problems)} problem(s): " + " | ".join(problems)[:400],
        )
        return problems

    messages = render("s06", prompt, context)
    try:
        ctx.llm.generate(task, messages, role="code", context=context, check=check, max_rounds=max_rounds)
    except LLMError as exc:
        last = result.rounds[-1]["errors"] if result.rounds else [str(exc)]
        result.reason = (
            f"s06: table {spec.name}: no generator passed the checks after "
            f"{max(len(result.rounds), 1)} round(s): " + "; ".join(_one_line(e) for e in last[:5])
        )
        ctx.log.warning(result.reason)
        return result
    result.status = "ok"
    return result


def _generation(res: TableResult, script_path: str, seed: int, count: int) -> dict:
    return {"script": script_path, "seed": seed, "records": count, "rounds_used": len(res.rounds), "rounds": res.rounds}


def _script_text(res: TableResult, reason: str | None = None) -> str:
    return res.script if res.script else f"# no generator script was produced: {reason or res.reason}\n"


# ------------------------------------------------------------------------ entity job
def run_entity(ctx: StepContext) -> None:
    name = ctx.wildcards["entity"]
    entities = load_entities(ctx.inputs["entities"])
    ent = entities.get(name)
    script_rel = f"database/scripts/entities/{name}.py"
    if ent is None:
        reason = f"s06: entity {name} is not in entities.json"
        ctx.write_text("script", f"# {reason}\n")
        ctx.write_json(
            "table",
            {
                "table": name,
                "primary_key": f"{name}",
                "kind": "entity",
                "records": [],
                "status": "failed",
                "reason": reason,
            },
            "table",
        )
        return
    count = ctx.cfg.database.entity_records
    seed = table_seed(ctx.seed, "entity", name)
    context = {
        "entity": ent.model_dump(exclude_none=True),
        "records": count,
        "seed": seed,
        "simulation_time": ctx.cfg.simulation_time,
        "usage": f"python {name}.py OUTPUT_JSON",
    }
    res = generate_table(ctx, "s06.entity_script", "entity_script", context, dc.spec_for_entity(ent), count)
    ctx.write_text("script", _script_text(res))
    table: dict[str, Any] = {
        "table": name,
        "primary_key": ent.primary_key,
        "kind": "entity",
        "records": res.records if res.status == "ok" else [],
        "status": res.status,
        "generation": _generation(res, script_rel, seed, count),
    }
    if res.status != "ok":
        table["reason"] = res.reason
    ctx.write_json("table", table, "table")


# ------------------------------------------------------------------------ domain job
def _entity_tables(paths: list[Path] | Path | None) -> dict[str, tuple[Path, dict]]:
    """entity name -> (file, parsed table) for the entity tables given to the job."""
    out: dict[str, tuple[Path, dict]] = {}
    for p in [paths] if isinstance(paths, Path) else list(paths or []):
        data = artifacts.read(p)
        out[str(data.get("table") or Path(p).stem)] = (Path(p), data)
    return out


def relationship_spec(bp: Blueprint, rel: Relationship, entities: dict[str, Entity]) -> dc.TableSpec:
    """What ``rel``'s table must look like: its columns, the status lifecycle its tools give it
    and, where a check-in tool acts on it, the check-in window the data must serve (the window
    statuses are the tool's precondition statuses that fit a time still to come)."""
    lifecycle = data_rules.lifecycle_of(bp.tools, rel.name)
    spec = dc.spec_for_relationship(rel, lifecycle)
    window = data_rules.window_of(
        bp.tools, derive_rules(bp, entities), rel.name, (lifecycle or {}).get("column", "status")
    )
    status = spec.column((lifecycle or {}).get("column", "status"))
    if window is not None and window["statuses"] and status is not None and status.enum:
        _, future = data_rules.status_windows(status.enum, lifecycle)
        window["statuses"] = [v for v in window["statuses"] if v in future] or window["statuses"]
    return dc.spec_for_relationship(rel, lifecycle, window)


def relationship_context(
    bp: Blueprint, rel: Relationship, entities: dict[str, Entity], count: int, seed: int, simulation_time: str
) -> dict:
    refs = sorted(set(rel.foreign_keys().values()))
    spec = relationship_spec(bp, rel, entities)
    rules: dict[str, Any] = {}
    if spec.lifecycle is not None:
        rules["lifecycle"] = spec.lifecycle
    sched = data_rules.scheduled_column(spec.columns)
    status = spec.column((spec.lifecycle or {}).get("column", "status"))
    if sched is not None:
        rules["scheduled"] = {"column": sched.name, "business_hours": sched.type == "datetime"}
        if status is not None and status.enum:
            past, future = data_rules.status_windows(status.enum, spec.lifecycle)
            rules["scheduled"] |= {"status_column": status.name, "past_statuses": past, "future_statuses": future}
    if spec.window is not None:
        rules["window"] = spec.window
    return {
        "domain": bp.domain,
        "domain_description": bp.description,
        "core_entity": bp.core_entity,
        "relationship": rel.model_dump(exclude_none=True),
        "entities": {e: entities[e].model_dump(exclude_none=True) for e in refs},
        "records": count,
        "seed": seed,
        "simulation_time": simulation_time,
        "usage": f"python {rel.name}.py OUTPUT_JSON " + " ".join(f"{e}=TABLE_JSON" for e in refs),
        **rules,
    }


def _write_failed_domain(ctx: StepContext, out: Path, domain: str, reason: str) -> None:
    ctx.log.warning("domain %s quarantined: %s", domain, reason)
    ctx.write_json(
        out / "tables.json", {"domain": domain, "status": "failed", "reason": reason, "tables": {}}, "database_tables"
    )
    ctx.write_json(
        out / "summary.json",
        {
            "domain": domain,
            "status": "failed",
            "reason": reason,
            "tables": {},
            "simulation_time": ctx.cfg.simulation_time,
        },
        "database_summary",
    )


def run_domain(ctx: StepContext) -> None:
    with ctx.output_dir("db") as out:
        build_domain(ctx, out, ctx.wildcards.get("domain", ctx.output("db").name))


def build_domain(ctx: StepContext, out: Path, domain: str) -> None:
    """Every relationship table of ``domain``, its manifest and summary, written under ``out``."""
    bp, failed = blueprint_or_reason(ctx.inputs["blueprint"])
    if bp is None:
        return _write_failed_domain(ctx, out, domain, failed or "s04: blueprint failed")
    entities = load_entities(ctx.inputs["entities"])
    tables = _entity_tables(ctx.inputs.get("entity_tables"))
    for name in bp.entities:
        if name not in entities:
            return _write_failed_domain(ctx, out, domain, f"s06: entity {name} is not in entities.json")
        if name not in tables:
            return _write_failed_domain(ctx, out, domain, f"s06: no entity table for {name} was given to the job")
        if tables[name][1].get("status") == "failed":
            return _write_failed_domain(ctx, out, domain, upstream_reason("s06", tables[name][1]))
        dup = dc.duplicate_keys(tables[name][1].get("records") or [], tables[name][1].get("primary_key", ""))
        if dup:
            reason = (
                f"s06: entity table {name}: primary key {tables[name][1].get('primary_key')!r} is not unique: {dup}"
            )
            return _write_failed_domain(ctx, out, domain, reason)
    sim_time = ctx.cfg.simulation_time
    count = ctx.cfg.database.relationship_records
    # Every relationship table up to the first one that cannot be made, prepared in order;
    # their generator scripts are written (concurrently: LLMClient.map, bounded by
    # llm.max_concurrency) and the results taken in order, so the outputs are those of one
    # table after the other: scripts kept up to the first failure, then the domain fails.
    jobs: list[tuple[Relationship, int, dict]] = []
    missing_reason = None
    for rel in bp.relationships:
        fks = rel.foreign_keys()
        missing = sorted(set(fks.values()) - set(tables))
        if missing:
            missing_reason = f"s06: {rel.name} references {missing} without entity tables"
            break
        seed = table_seed(ctx.seed, "relationship", domain, rel.name)
        fk_values = {
            col: dc.primary_keys(tables[e][1]["records"], tables[e][1]["primary_key"]) for col, e in fks.items()
        }
        inputs = {e: tables[e][0] for e in sorted(set(fks.values()))}
        ref_records = {
            e: {r.get(tables[e][1]["primary_key"]): r for r in tables[e][1]["records"]}
            for e in sorted(set(fks.values()))
        }
        context = relationship_context(bp, rel, entities, count, seed, sim_time)
        jobs.append((rel, seed, {"context": context, "inputs": inputs, "fk_values": fk_values, "ref": ref_records}))

    def make(job: tuple[Relationship, int, dict]) -> TableResult:
        rel, _, a = job
        return generate_table(
            ctx,
            "s06.relationship_script",
            "relationship_script",
            a["context"],
            relationship_spec(bp, rel, entities),
            count,
            a["inputs"],
            a["fk_values"],
            a["ref"],
        )

    results: dict[str, tuple[TableResult, int]] = {}
    for (rel, seed, _), res in zip(jobs, ctx.llm.map(make, jobs) if jobs else [], strict=True):
        # scripts are kept even for a failed table: they are what a person debugs
        ctx.write_text(out / "scripts" / f"{rel.name}.py", _script_text(res))
        if res.status != "ok":
            return _write_failed_domain(ctx, out, domain, res.reason)
        results[rel.name] = (res, seed)
    if missing_reason is not None:
        return _write_failed_domain(ctx, out, domain, missing_reason)

    manifest: dict[str, str] = {}
    summary_tables: dict[str, dict] = {}
    for name in bp.entities:
        path, data = tables[name]
        rel_path = Path("..") / "entities" / path.name if path.parent.name == "entities" else path.resolve()
        manifest[name] = str(rel_path)
        ent = entities[name]
        summary_tables[name] = dc.table_summary(
            "entity", str(rel_path), dc.spec_for_entity(ent), data["records"], io.sha256_file(path)
        )
    for rel in bp.relationships:
        res, seed = results[rel.name]
        path = out / f"{rel.name}.json"
        ctx.write_json(
            path,
            {
                "table": rel.name,
                "primary_key": rel.primary_key,
                "kind": "relationship",
                "records": res.records,
                "status": "ok",
                "generation": _generation(res, f"scripts/{rel.name}.py", seed, count),
            },
            "table",
        )
        manifest[rel.name] = path.name
        summary_tables[rel.name] = dc.table_summary(
            "relationship", path.name, dc.spec_for_relationship(rel), res.records, io.sha256_file(path)
        )
    ctx.write_json(out / "tables.json", {"domain": domain, "status": "ok", "tables": manifest}, "database_tables")
    ctx.write_json(
        out / "summary.json",
        {"domain": domain, "status": "ok", "simulation_time": sim_time, "tables": summary_tables},
        "database_summary",
    )


def summarize_database(db_dir: Path) -> dict:
    """The summary.json of a domain database directory (for s07 and later steps)."""
    return artifacts.read(Path(db_dir) / "summary.json")
