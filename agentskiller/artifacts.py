"""Reading artifacts: one typed loader per artifact a step reads, and the upstream-status helpers.

Steps read each other's outputs only through this module, so a step never imports another
step to reach a loader. A loader names the file (and the JSON Schema, where it validates)
when the artifact cannot be read, instead of a bare ``KeyError`` or ``JSONDecodeError``.

Quarantine: a unit that failed writes its artifact with ``status: failed`` and a ``reason``;
:func:`failure_reason`, :func:`upstream_reason` and :func:`first_failure` are how a later
step finds out and passes the reason on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import io
from .models.blueprint import Blueprint, Outline
from .models.catalog import Entity, EntityGraph
from .models.tasks import Instance, Task, TaskTemplate

#: artifact bookkeeping fields that are not part of the model they carry
_BOOKKEEPING = ("meta", "status", "reason")


class ArtifactError(RuntimeError):
    """An upstream artifact is missing, unreadable or malformed; the message names the file.

    Not a quarantine: a damaged input is not a bad unit, so the job fails (and a resume redoes
    it once the input is rebuilt). Deliberately not a ValueError, so that the steps' checkers,
    which catch ValueError for bad *content*, never swallow it.
    """


# ------------------------------------------------------------------------ basics
def as_paths(value: Any) -> list[Path]:
    """A rule's input (one path, a list of paths, or nothing) as a list of paths."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [Path(x) for x in value]
    return [Path(value)]


def read(path: str | Path, schema: str | None = None) -> Any:
    """The JSON artifact at ``path``, validated against ``schemas/<schema>.schema.json`` if given."""
    path = Path(path)
    try:
        data = io.read_json(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing artifact") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON ({exc})") from None
    if schema is not None:
        problem = io.first_validation_error(data, schema)
        if problem:
            raise ArtifactError(f"{path}: does not match schemas/{schema}.schema.json: {problem}")
    return data


def read_lines(path: str | Path) -> list[Any]:
    """A JSONL artifact, one object per line."""
    path = Path(path)
    try:
        return io.read_jsonl(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing artifact") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON lines ({exc})") from None


def iter_lines(path: str | Path) -> Iterator[Any]:
    """A JSONL artifact, one object at a time (for aggregates that must not hold a whole file)."""
    path = Path(path)
    try:
        yield from io.iter_jsonl(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing artifact") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON lines ({exc})") from None


def read_text(path: str | Path) -> str:
    path = Path(path)
    try:
        return io.read_text(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing artifact") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable text ({exc})") from None


def _model_fields(data: dict, model: type) -> dict:
    fields = set(model.model_fields)
    return {k: v for k, v in data.items() if k in fields}


# ---------------------------------------------------------------- quarantine status
def failure_reason(path: str | Path | None) -> str | None:
    """The reason when the JSON artifact at ``path`` has ``status: failed``, else None."""
    if path is None or not Path(path).is_file() or Path(path).suffix != ".json":
        return None
    data = read(path)
    if isinstance(data, dict) and data.get("status") == "failed":
        return str(data.get("reason") or "failed upstream")
    return None


def status_of(path: str | Path) -> tuple[str, str]:
    """``("failed", reason)`` for a quarantined artifact, else ``("ok", "")``; an unreadable
    one is an :class:`ArtifactError`."""
    data = read(path)
    if isinstance(data, dict) and data.get("status") == "failed":
        return "failed", str(data.get("reason") or "failed")
    return "ok", ""


def upstream_reason(step: str, data: dict) -> str:
    """The reason of a failed upstream artifact, prefixed by the failing step once."""
    reason = str(data.get("reason") or "failed")
    failing = str((data.get("meta") or {}).get("step") or step)
    return reason if reason[:1] == "s" and reason[1:3].isdigit() else f"{failing}: {reason}"


def first_failure(checks: Iterable[tuple[str, str | Path | None]]) -> tuple[str, str] | None:
    """``(label, reason)`` of the first missing or failed artifact among ``(label, path)`` pairs."""
    for label, path in checks:
        if path is None:
            continue
        if not Path(path).is_file():
            return label, f"missing input {path}"
        status, reason = status_of(path)
        if status == "failed":
            return label, reason
    return None


def failed_input(inputs: dict[str, Any], names: Iterable[str], step: str) -> str | None:
    """The first quarantined artifact among the named inputs, as ``"<step>: <name> failed: reason"``."""
    for name in names:
        for p in as_paths(inputs.get(name)):
            reason = failure_reason(p)
            if reason:
                return f"{step}: {name} failed: {reason}"
    return None


# ------------------------------------------------------------------ catalogue (s01-s05)
def load_entities(path: str | Path) -> dict[str, Entity]:
    """``entities.json`` -> {name: Entity}; also accepts a bare list or a {name: entity} mapping."""
    data = read(path)
    items: Any = data.get("entities", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        items = [{"name": k, **v} if "name" not in v else v for k, v in items.items() if isinstance(v, dict)]
    out: dict[str, Entity] = {}
    for item in items or []:
        ent = Entity.model_validate(item)
        out[ent.name] = ent
    return out


def load_entity_graph(path: str | Path) -> EntityGraph:
    return EntityGraph.model_validate({k: v for k, v in read(path, "entity_graph").items() if k != "meta"})


def load_outlines(path: str | Path) -> list[Outline]:
    return [Outline.model_validate(d) for d in read(path, "outlines")["domains"]]


def blueprint_or_reason(path: str | Path, step: str = "s04") -> tuple[Blueprint | None, str | None]:
    """``(blueprint, None)``, or ``(None, reason)`` when the artifact says ``status: failed``."""
    data = read(path, "blueprint")
    if not isinstance(data, dict):
        return None, "blueprint artifact is not an object"
    if data.get("status") == "failed":
        return None, upstream_reason(step, data)
    return Blueprint.model_validate(_model_fields(data, Blueprint)), None


def load_blueprint(path: str | Path) -> Blueprint | None:
    """The blueprint artifact as a model, or None when the domain is quarantined."""
    return blueprint_or_reason(path)[0]


def require_blueprint(path: str | Path, error: type[Exception] = ArtifactError) -> Blueprint:
    """The blueprint of a domain that passed s04; a quarantined one raises ``error`` with its reason."""
    data = read(path, "blueprint")
    if data.get("status") == "failed":
        raise error(f"s04 blueprint of {data.get('domain', Path(path).stem)} failed: {data.get('reason', '')}")
    return Blueprint.model_validate(_model_fields(data, Blueprint))


def load_tool_list(path: str | Path) -> list[dict]:
    """The OpenAI tools of a tool list artifact (``{"tools": [...]}``)."""
    data = read(path, "tool_list")
    tools = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(tools, list):
        raise ArtifactError(f"{path}: a tool list has a 'tools' list")
    return tools


# -------------------------------------------------------------- domain artifacts (s06-s09)
def load_table(path: str | Path) -> dict:
    """A table file: ``{table, primary_key, records, status, ...}``."""
    data = read(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: a table file is an object")
    return data


def load_table_manifest(db_dir: str | Path) -> dict[str, Path]:
    """``database/{domain}/tables.json``: table name -> its file (absolute)."""
    db_dir = Path(db_dir)
    data = read(db_dir / "tables.json")
    return {name: (db_dir / rel).resolve() for name, rel in (data.get("tables") or {}).items()}


def load_policy_report(path: str | Path) -> dict:
    """``policies/{domain}.json``: the s07 check report with the parsed policy markers."""
    return read(path, "policy_report")


def load_tool_graph(path: str | Path) -> dict:
    """``tool_graphs/{domain}.json`` (or a pair's fused ``tool_graph.json``)."""
    return read(path)


def load_server_report(path: str | Path) -> dict:
    """``servers/{domain}/report.json``: status, tests, rounds, MCP check, runtime manifest."""
    return read(path, "server_report")


# ------------------------------------------------------------------ tasks (s14-s17)
def load_templates(path: str | Path, accepted_only: bool = True) -> list[TaskTemplate]:
    """The templates of ``task_templates/{env}.json`` (only the accepted ones by default)."""
    data = read(path, "task_templates")
    return [
        TaskTemplate.model_validate(t)
        for t in data.get("templates", [])
        if not accepted_only or t["status"] == "accepted"
    ]


def load_instances(path: str | Path) -> list[Instance]:
    return [Instance.model_validate(i) for i in read(path, "instances").get("instances", [])]


def load_tasks(path: str | Path, valid_only: bool = True) -> list[Task]:
    data = read(path, "tasks")
    return [Task.model_validate(t) for t in data.get("tasks", []) if not valid_only or t["status"] == "valid"]


def load_queries(path: str | Path) -> list[dict]:
    return read_lines(path)
