"""Environment manifests and sessions.

An *environment* is one domain (``servers/{domain}/``) or a fused pair. Its manifest::

    {"env": "DentalCareDesk", "domains": ["DentalCareDesk"], "core_entity": "Patient",
     "tables": {"Patient": "../../database/entities/Patient.json", ...},   # physical name -> file
     "namespace": {"DentalCareDesk": {"Appointment": "Appointment", ...}}, # logical -> physical
     "tools_modules": {"DentalCareDesk": "tools.py"},
     "simulation_time": "2025-06-02T09:00:00Z",
     "tool_prefix": {"DentalCareDesk": ""}}

A pair's manifest also lists its Bridge Rules (``bridge``: ``[{"id", "kind", "domain",
"tool", "after"}]``, from :mod:`agentskiller.models.bridge_rules`). The identity,
authorization and separation rules hold in every environment (the runtime keeps one
authorization per service, refuses a second person, and a member's code sees only its own
namespace); the ordering rules are the ones a session checks here: ``tool`` is refused
until ``after`` succeeded in the episode.

Paths are relative to the manifest's directory. A server directory holds ``report.json``
(s09) with the manifest under the key ``"environment"``; :func:`load_environment` takes
either that directory, that report, or a manifest file.

A :class:`Session` is one episode: a fresh copy of the initial state plus the tools, with
:meth:`Session.call` as the single entry point used by the fast-path worker, the MCP server
and the tests (so all three agree on argument validation, errors and rollback).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .state import State

__all__ = [
    "BridgeEntry",
    "EnvironmentManifest",
    "Environment",
    "Session",
    "CallRecord",
    "load_environment",
    "ErrorType",
]

ErrorType = Literal["tool_error", "crash", "bad_arguments", "unknown_tool", "non_json", "timeout"]


BridgeKind = Literal["identity", "authorization", "separation", "ordering"]


class BridgeEntry(BaseModel):
    """One Bridge Rule as the runtime sees it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^bridge\.[A-Za-z0-9_.\-]+$")
    kind: BridgeKind
    domain: str | None = None
    #: ordering: the tool that waits (exposed name)
    tool: str | None = None
    #: ordering: the tool that must have succeeded first (exposed name)
    after: str | None = None

    @model_validator(mode="after")
    def _ordering_names_tools(self) -> BridgeEntry:
        if self.kind == "ordering" and not (self.tool and self.after):
            raise ValueError(f"{self.id}: an ordering rule names its tool and the tool it comes after")
        return self


class EnvironmentManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(min_length=1)
    domains: list[str] = Field(min_length=1)
    core_entity: str
    #: physical table name -> table file (relative to the manifest directory)
    tables: dict[str, str]
    #: domain -> {logical table name -> physical table name}
    namespace: dict[str, dict[str, str]]
    #: domain -> tools module file (relative to the manifest directory)
    tools_modules: dict[str, str]
    simulation_time: str
    #: domain -> tool-name prefix ("" for a single domain; exposed name is "<prefix>__<tool>")
    tool_prefix: dict[str, str] = Field(default_factory=dict)
    #: the pair's Bridge Rules (empty for a single domain)
    bridge: list[BridgeEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentManifest:
        for d in self.domains:
            if d not in self.tools_modules:
                raise ValueError(f"no tools module for domain {d}")
            for logical, physical in self.namespace.get(d, {}).items():
                if physical not in self.tables:
                    raise ValueError(f"namespace {d}.{logical} -> {physical}: no such table file")
        unknown = (set(self.namespace) | set(self.tools_modules) | set(self.tool_prefix)) - set(self.domains)
        if unknown:
            raise ValueError(f"entries for unknown domains: {sorted(unknown)}")
        return self

    def namespace_for(self, domain: str) -> dict[str, str]:
        # A single domain without an explicit namespace sees every table under its own name.
        return dict(self.namespace.get(domain) or {t: t for t in self.tables})


@dataclass
class Environment:
    manifest: EnvironmentManifest
    base_dir: Path
    #: physical table name -> absolute table file
    table_paths: dict[str, Path] = field(default_factory=dict)
    #: domain -> absolute tools module path
    module_paths: dict[str, Path] = field(default_factory=dict)
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.manifest.env

    def initial_state(self) -> State:
        return State.from_files(self.table_paths)

    def toolset(self):  # -> ToolSet (import here: loader imports this module)
        from .loader import ToolSet

        return ToolSet.from_environment(self)

    def new_session(self, state: State | None = None, toolset=None) -> Session:
        return Session(self, toolset or self.toolset(), state if state is not None else self.initial_state())


def _resolve(base: Path, rel: str) -> Path:
    p = Path(rel)
    return (p if p.is_absolute() else base / p).resolve()


def environment_from_manifest(manifest: dict | EnvironmentManifest, base_dir: str | Path, source=None) -> Environment:
    m = manifest if isinstance(manifest, EnvironmentManifest) else EnvironmentManifest.model_validate(manifest)
    base = Path(base_dir).resolve()
    env = Environment(
        manifest=m,
        base_dir=base,
        table_paths={t: _resolve(base, p) for t, p in m.tables.items()},
        module_paths={d: _resolve(base, p) for d, p in m.tools_modules.items()},
        source=Path(source) if source else None,
    )
    missing = [str(p) for p in [*env.table_paths.values(), *env.module_paths.values()] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"environment {m.env}: missing files: {missing}")
    return env


def load_environment(path: str | Path) -> Environment:
    """Load from a server directory (``report.json["environment"]``), a ``report.json``, or
    a manifest file."""
    path = Path(path)
    if path.is_dir():
        report = path / "report.json"
        if not report.is_file():
            raise FileNotFoundError(f"{path}: no report.json (not a server directory)")
        path = report
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if isinstance(data, dict) and "environment" in data and "env" not in data:
        if data.get("status") == "failed":
            raise ValueError(f"{path}: server is quarantined: {data.get('reason', '')}")
        data = data["environment"]
    return environment_from_manifest(data, path.parent, source=path)


# --------------------------------------------------------------------------- sessions
def _json_error(value: Any) -> str | None:
    """None when ``value`` is plain JSON (dict/list/str/int/float/bool/None, finite)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return str(exc)
    # Tuples serialize but do not round-trip; non-str dict keys get converted silently.
    if json.loads(text) != value:
        return "value does not round-trip through JSON (tuple or non-string keys?)"
    return None


@dataclass
class CallRecord:
    tool: str
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: ErrorType | None = None
    state_hash_after: str = ""
    changed_tables: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "tool": self.tool,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
            "error_type": self.error_type,
            "state_hash_after": self.state_hash_after,
            "changed_tables": list(self.changed_tables),
        }


class CallTimeout(BaseException):
    """Raised inside a tool call by the worker's per-call alarm. A BaseException so that
    tool code's ``except Exception`` cannot swallow it."""


class Session:
    """One episode: the environment's tools over one mutable state."""

    def __init__(self, environment: Environment, toolset, state: State) -> None:
        self.environment = environment
        self.toolset = toolset
        self.state = state
        #: tool -> [(rule id, tool that must have succeeded before it)]
        self.ordering: dict[str, list[tuple[str, str]]] = {}
        for rule in environment.manifest.bridge:
            if rule.kind == "ordering" and rule.tool and rule.after:
                self.ordering.setdefault(rule.tool, []).append((rule.id, rule.after))

    def _out_of_order(self, name: str) -> str | None:
        for rule_id, after in self.ordering.get(name, []):
            if after not in self.state.succeeded:
                return f"refused ({rule_id}): {name} only after {after} succeeded in this conversation"
        return None

    def call(self, name: str, arguments: dict | None) -> CallRecord:
        """Call one tool. Never raises for tool-side problems: they become a failed
        :class:`CallRecord`, and the state is rolled back to before the call."""
        from .api import ToolError

        bound = self.toolset.get(name)
        if bound is None:
            return self._fail(name, "unknown_tool", f"unknown tool: {name}")
        try:
            kwargs = bound.validate_arguments(arguments if arguments is not None else {})
        except ValidationError as exc:
            return self._fail(name, "bad_arguments", _validation_message(exc))
        except ValueError as exc:
            return self._fail(name, "bad_arguments", _short(str(exc)))
        early = self._out_of_order(name)
        # Authorization comes before ordering: a member not yet authorized hears that first
        # (its tool code refuses it), so the ordering refusal only waits for the tool to pass.
        if early and self.state.auth.get(bound.domain) is not None:
            return self._fail(name, "tool_error", early)
        self.state.begin()
        try:
            result = bound.fn(bound.context(self.state), **kwargs)
        except ToolError as exc:
            self.state.rollback()
            return self._fail(name, "tool_error", str(exc) or "tool error")
        except CallTimeout:
            self.state.rollback()
            return self._fail(name, "timeout", "the tool call took too long")
        except RecursionError:
            self.state.rollback()
            return self._fail(name, "crash", "RecursionError: maximum recursion depth exceeded")
        except Exception as exc:  # a crash in generated code; reported, never propagated
            self.state.rollback()
            return self._fail(name, "crash", _short(f"{type(exc).__name__}: {exc}"))
        problem = _json_error(result)
        if problem is not None:
            self.state.rollback()
            return self._fail(name, "non_json", f"result is not JSON: {problem}")
        if early:
            self.state.rollback()
            return self._fail(name, "tool_error", early)
        changed = self.state.commit()
        self.state.succeeded.append(name)
        return CallRecord(name, True, result, None, None, self.state.hash(), changed)

    def _fail(self, name: str, kind: ErrorType, message: str) -> CallRecord:
        return CallRecord(name, False, None, message, kind, self.state.hash(), [])


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return _short("invalid arguments: " + "; ".join(parts))


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
