"""Step s12: the database of a pair ``A+B``. Deterministic, no LLM.

* Shared entity tables are unified: every entity has ONE global table
  (``database/entities/{Entity}.json``) already, so the pair's manifest points at it
  (``../../../database/entities/X.json``); the shared person is literally the same rows in
  both members, which is what lets one authorization serve both storylines.
* Relationship tables are namespaced per member: ``cross/{pair}/database/<Domain>_<Rel>.json``
  (a table file: ``{table, primary_key, records, status, meta}``), records copied
  unchanged from ``database/<Domain>/<Rel>.json``. Two members may both have an
  ``Appointment`` table; in the pair they are ``A_Appointment`` and ``B_Appointment``.
* Checked: no physical name is used twice (and none shadows an entity table); every
  relationship table has unique primary keys; every foreign key of every record points at a
  row of the (unified) entity table it references.
* ``tables.json``: physical table -> file (relative to the folder), plus the namespace
  ``{domain: {logical: physical}}`` that the pair's runtime manifest uses, so the members'
  unchanged tool code reads ``ctx.table("Appointment")`` and gets its own table.
* ``summary.json``: per-table statistics computed from the data (``database_summary``).

A member whose blueprint or database failed makes the pair fail (status ``failed`` + reason
in both files), never the run.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentskiller import artifacts, io
from agentskiller.artifacts import as_paths, require_blueprint
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import Blueprint
from agentskiller.steps.cross.s10_combinations import pair_members, physical_table
from agentskiller.steps.domains import data_checks as dc

TABLES_SCHEMA = "fused_database"
SUMMARY_SCHEMA = "database_summary"
TABLE_SCHEMA = "table"


class FusionError(Exception):
    """The pair's database cannot be built; the message is the artifact's reason."""


def _member_tables(db_dir: Path, bp: Blueprint) -> dict[str, Path]:
    """logical table -> file of one member, from its s06 ``tables.json``."""
    manifest = db_dir / "tables.json"
    if not manifest.is_file():
        raise FusionError(f"s06 database of {bp.domain}: no tables.json in {db_dir}")
    data = artifacts.read(manifest)
    if data.get("status") == "failed":
        raise FusionError(f"s06 database of {bp.domain} failed: {data.get('reason', '')}")
    files = {name: (db_dir / rel).resolve() for name, rel in (data.get("tables") or {}).items()}
    missing = sorted(set(bp.tables) - set(files))
    if missing:
        raise FusionError(f"s06 database of {bp.domain}: no table files for {missing}")
    return files


def _read_table(path: Path, label: str) -> dict:
    if not path.is_file():
        raise FusionError(f"{label}: missing table file {path}")
    data = artifacts.read(path)
    if data.get("status") == "failed":
        raise FusionError(f"{label} failed: {data.get('reason', '')}")
    return data


def fk_problems(records: list[dict], spec: dc.TableSpec, entity_keys: dict[str, set]) -> list[str]:
    """Foreign keys of ``records`` that point at no row of the referenced entity table."""
    problems = []
    for col, target in sorted(spec.foreign_keys.items()):
        keys = entity_keys.get(target)
        if keys is None:
            problems.append(f"{spec.name}.{col} references {target}, which is not a table of the pair")
            continue
        nullable = bool(getattr(spec.column(col), "nullable", False))
        bad = [r.get(col) for r in records if not (r.get(col) is None and nullable) and r.get(col) not in keys]
        if bad:
            problems.append(f"{spec.name}.{col}: {len(bad)} value(s) are not {target} keys, e.g. {bad[:3]}")
    return problems


def fuse(
    pair: str, blueprints: list[Blueprint], member_dbs: dict[str, Path], out: Path, write_table
) -> tuple[dict, dict, dict]:
    """Build the pair's tables in ``out``; -> (tables manifest, namespace, summary tables).
    ``write_table(path, table_obj)`` writes one table file (schema-validated, atomic)."""
    entities = sorted({e for bp in blueprints for e in bp.entities})
    entity_set = set(entities)
    tables: dict[str, str] = {}
    namespace: dict[str, dict[str, str]] = {}
    summary: dict[str, dict] = {}
    entity_data: dict[str, dict] = {}
    entity_files: dict[str, Path] = {}
    member_files = {bp.domain: _member_tables(member_dbs[bp.domain], bp) for bp in blueprints}
    # entities: one table each, shared by both members (the same file, not a copy)
    for bp in blueprints:
        for e in bp.entities:
            path = member_files[bp.domain][e]
            if e in entity_files and entity_files[e] != path:
                raise FusionError(f"entity {e}: members use different tables ({entity_files[e]} vs {path})")
            entity_files[e] = path
    for e in entities:
        entity_data[e] = _read_table(entity_files[e], f"s06 entity table {e}")
        tables[e] = os.path.relpath(entity_files[e], out.resolve())
    entity_keys = {e: {r.get(d["primary_key"]) for r in d.get("records") or []} for e, d in entity_data.items()}
    # relationships: namespaced per member, FK integrity re-checked against the unified entities
    owner: dict[str, str] = {e: "the shared entity table" for e in entities}
    problems: list[str] = []
    for bp in sorted(blueprints, key=lambda b: b.domain):
        ns: dict[str, str] = {}
        for e in bp.entities:
            ns[e] = e
        for rel in bp.relationships:
            phys = physical_table(bp.domain, rel.name, entity_set)
            if phys in owner:
                raise FusionError(f"table name collision: {phys} of {bp.domain} vs {owner[phys]}")
            owner[phys] = f"{bp.domain}.{rel.name}"
            src = member_files[bp.domain][rel.name]
            data = _read_table(src, f"s06 table {bp.domain}.{rel.name}")
            records = list(data.get("records") or [])
            spec = dc.spec_for_relationship(rel)
            keys = [r.get(rel.primary_key) for r in records]
            if len(set(map(str, keys))) != len(keys):
                problems.append(f"{phys}: primary key {rel.primary_key} is not unique")
            problems += [f"{bp.domain}: {p}" for p in fk_problems(records, spec, entity_keys)]
            path = out / f"{phys}.json"
            write_table(
                path,
                {
                    "table": phys,
                    "primary_key": rel.primary_key,
                    "kind": "relationship",
                    "domain": bp.domain,
                    "logical_table": rel.name,
                    "source": os.path.relpath(src, out.resolve()),
                    "records": records,
                    "status": "ok",
                },
            )
            tables[phys] = path.name
            ns[rel.name] = phys
            summary[phys] = dc.table_summary("relationship", path.name, spec, records, io.sha256_file(path))
        namespace[bp.domain] = dict(sorted(ns.items()))
    if problems:
        raise FusionError("foreign-key integrity check failed: " + "; ".join(problems)[:1500])
    ent_specs = _entity_specs(blueprints, entity_data)
    for e in entities:
        summary[e] = dc.table_summary(
            "entity", tables[e], ent_specs[e], entity_data[e].get("records") or [], io.sha256_file(entity_files[e])
        )
    return dict(sorted(tables.items())), namespace, dict(sorted(summary.items()))


def _entity_specs(blueprints: list[Blueprint], entity_data: dict[str, dict]) -> dict[str, dc.TableSpec]:
    """A column spec per entity table, inferred from its records (types only): the catalogue
    entry is not an input of s12, and the statistics need nothing more."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    out = {}
    for e, data in entity_data.items():
        cols: dict[str, str] = {}
        for r in data.get("records") or []:
            for k, v in r.items():
                if v is not None and k not in cols:
                    cols[k] = names.get(type(v), "string")
        out[e] = dc.TableSpec(
            e, "entity", data["primary_key"], [dc.ColumnSpec(name=k, type=t, nullable=True) for k, t in cols.items()]
        )
    return out


def _write_failed(ctx: StepContext, out: Path, pair: str, domains: list[str], reason: str) -> None:
    ctx.log.warning("s12 %s quarantined: %s", pair, reason)
    for stale in out.glob("*_*.json"):  # a previous successful fusion's tables
        stale.unlink()
    ctx.write_json(
        out / "tables.json",
        {"domain": pair, "domains": domains, "status": "failed", "reason": reason, "tables": {}, "namespace": {}},
        TABLES_SCHEMA,
    )
    ctx.write_json(
        out / "summary.json",
        {
            "domain": pair,
            "status": "failed",
            "reason": reason,
            "tables": {},
            "simulation_time": ctx.cfg.simulation_time,
        },
        SUMMARY_SCHEMA,
    )


def run(ctx: StepContext) -> None:
    with ctx.output_dir("db") as out:
        build_pair_database(ctx, out, ctx.wildcards.get("pair") or ctx.output("db").parent.name)


def build_pair_database(ctx: StepContext, out: Path, pair: str) -> None:
    """The pair's fused tables, manifest and summary, written under ``out``."""
    domains = pair_members(pair)
    try:
        bps = [require_blueprint(p, FusionError) for p in as_paths(ctx.inputs["blueprints"])]
        if sorted(bp.domain for bp in bps) != domains:
            raise FusionError(f"blueprints {[bp.domain for bp in bps]} are not the members of {pair}")
        cores = {bp.core_entity for bp in bps}
        if len(cores) != 1:
            raise FusionError(f"members do not share a core entity: {sorted(cores)}")
        dbs = {p.name: p for p in as_paths(ctx.inputs["dbs"])}
        missing = sorted(set(domains) - set(dbs))
        if missing:
            raise FusionError(f"no member database for {missing}")
        tables, namespace, summary = fuse(
            pair, bps, dbs, out, lambda path, obj: ctx.write_json(path, obj, TABLE_SCHEMA)
        )
    except FusionError as exc:
        _write_failed(ctx, out, pair, domains, f"s12: {exc}")
        return
    ctx.write_json(
        out / "tables.json",
        {
            "domain": pair,
            "domains": domains,
            "status": "ok",
            "core_entity": cores.pop(),
            "tables": tables,
            "namespace": namespace,
        },
        TABLES_SCHEMA,
    )
    ctx.write_json(
        out / "summary.json",
        {"domain": pair, "status": "ok", "simulation_time": ctx.cfg.simulation_time, "tables": summary},
        SUMMARY_SCHEMA,
    )
    ctx.log.info(
        "s12 %s: %d tables (%d namespaced)",
        pair,
        len(tables),
        sum(1 for t in tables if t not in {e for bp in bps for e in bp.entities}),
    )


__all__ = ["run", "fuse", "fk_problems", "FusionError"]
