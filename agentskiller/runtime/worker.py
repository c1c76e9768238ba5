"""The fast path: replay many tool-call episodes in one sandboxed process, no JSON-RPC.

Command line (what runs inside the sandbox)::

    python -m agentskiller.runtime.worker request.json response.json

``request.json``::

    {"environment": "env/manifest.json",
     "episodes": [{"id": "t1", "calls": [{"tool": "authorize_patient",
                                          "arguments": {"patient_id": "PAT-001"}}, ...]}, ...],
     "include_final_state": false, "per_call_timeout_s": 10}

``include_final_state``: ``false``, ``true`` (every table) or ``"changed"`` (only the tables
whose content differs from the initial state: what an end-state comparison needs, without
shipping the unchanged tables back once per episode).

An episode may also be given as a bare list of calls. Each episode starts from a fresh copy
of the initial state; authorization happens only through the environment's authorize tool
(there is no "authorize_as" shortcut: a request that has one is rejected).

``response.json``: ``{"initial_state_hash", "tools": [names], "episodes": [{"id",
"calls": [CallRecord...], "final_state_hash", "final_state" (optional), "error"}]}``.

Library use: :func:`execute_episodes` (sandboxed subprocess, the default for generated
code) and :func:`execute_episodes_inprocess` (trusted replays in tests only).
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .environment import CallTimeout, Environment, environment_from_manifest, load_environment
from .sandbox import SandboxResult, SandboxSettings, run_sandboxed

__all__ = [
    "CallResult",
    "EpisodeResult",
    "WorkerError",
    "execute_episodes",
    "execute_episodes_inprocess",
    "run_request",
    "bundle_environment",
]

DEFAULT_PER_CALL_TIMEOUT_S = 10.0
FinalState = bool | Literal["changed"]


class CallResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: Literal["tool_error", "crash", "bad_arguments", "unknown_tool", "non_json", "timeout"] | None = None
    state_hash_after: str
    changed_tables: list[str] = Field(default_factory=list)


class EpisodeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    calls: list[CallResult]
    initial_state_hash: str
    final_state_hash: str
    final_state: dict[str, list[dict]] | None = None
    #: an episode-level problem (malformed episode); the calls list is then empty
    error: str | None = None


class WorkerError(RuntimeError):
    """The worker process failed as a whole (timeout, memory, crash while loading)."""

    def __init__(self, message: str, sandbox: SandboxResult | None = None) -> None:
        super().__init__(message)
        self.sandbox = sandbox


# --------------------------------------------------------------------------- executing
def _normalize_episodes(episodes: Sequence[Any]) -> list[dict]:
    out = []
    for i, ep in enumerate(episodes):
        if isinstance(ep, list):
            ep = {"calls": ep}
        if not isinstance(ep, dict):
            ep = {"calls": None}
        ep = dict(ep)
        ep.setdefault("id", f"episode_{i:04d}")
        ep["id"] = str(ep["id"])
        out.append(ep)
    return out


def _episode_problem(ep: dict) -> str | None:
    if "authorize_as" in ep:
        return "'authorize_as' is not allowed: authorize through the environment's authorize tool"
    calls = ep.get("calls")
    if not isinstance(calls, list):
        return "an episode needs a 'calls' list"
    for j, c in enumerate(calls):
        if not isinstance(c, dict) or not isinstance(c.get("tool"), str):
            return f"call {j}: expected {{'tool': name, 'arguments': {{...}}}}"
        if "authorize_as" in c:
            return f"call {j}: 'authorize_as' is not allowed"
    return None


class _Alarm:
    """Per-call wall-clock limit via SIGALRM (main thread only)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds if seconds and seconds > 0 else None
        self.enabled = self.seconds is not None and _in_main_thread()

    def __enter__(self):
        if self.enabled:
            self._old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)

    @staticmethod
    def _fire(signum, frame):
        raise CallTimeout()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_request(
    env: Environment,
    episodes: Sequence[Any],
    *,
    include_final_state: FinalState = False,
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S,
) -> dict:
    """Execute episodes against ``env`` in this process; returns the response dict."""
    toolset = env.toolset()
    initial = env.initial_state()
    initial_hash = initial.hash()
    initial_tables = initial.table_hashes() if include_final_state == "changed" else {}
    results = []
    for ep in _normalize_episodes(episodes):
        problem = _episode_problem(ep)
        if problem:
            results.append(
                {
                    "id": ep["id"],
                    "calls": [],
                    "initial_state_hash": initial_hash,
                    "final_state_hash": initial_hash,
                    "final_state": None,
                    "error": problem,
                }
            )
            continue
        session = env.new_session(initial.copy(), toolset)
        calls = []
        for c in ep["calls"]:
            with _Alarm(per_call_timeout_s):
                rec = session.call(c["tool"], c.get("arguments") or {})
            calls.append(rec.to_json())
        results.append(
            {
                "id": ep["id"],
                "calls": calls,
                "initial_state_hash": initial_hash,
                "final_state_hash": session.state.hash(),
                "final_state": _final_state(session.state, include_final_state, initial_tables),
                "error": None,
            }
        )
    return {"initial_state_hash": initial_hash, "tools": toolset.names(), "episodes": results}


def _final_state(state, include: FinalState, initial_tables: dict[str, str]) -> dict | None:
    if not include:
        return None
    tables = state.canonical()
    if include == "changed":  # table_hashes() reuses the per-table JSON text State caches
        now = state.table_hashes()
        tables = {name: recs for name, recs in tables.items() if now[name] != initial_tables.get(name)}
    return tables


def execute_episodes_inprocess(
    environment: Environment | str | Path,
    episodes: Sequence[Any],
    *,
    include_final_state: FinalState = False,
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S,
) -> list[EpisodeResult]:
    """Trusted replays only (tests, hand-written fixtures): no sandbox."""
    env = environment if isinstance(environment, Environment) else load_environment(environment)
    resp = run_request(env, episodes, include_final_state=include_final_state, per_call_timeout_s=per_call_timeout_s)
    return [EpisodeResult.model_validate(e) for e in resp["episodes"]]


def bundle_environment(env: Environment) -> tuple[dict[str, bytes | Path], str]:
    """The files a sandboxed worker needs, as ``{relative path: source}``, and the
    manifest's relative path. Only these inputs are copied into the sandbox."""
    m = env.manifest
    files: dict[str, bytes | Path] = {}
    tables = {}
    for i, (name, path) in enumerate(sorted(env.table_paths.items())):
        rel = f"tables/{i:03d}_{_safe(name)}.json"
        files[f"env/{rel}"] = path
        tables[name] = rel
    modules = {}
    for domain, path in env.module_paths.items():
        rel = f"tools/{_safe(domain)}/tools.py"
        files[f"env/{rel}"] = path
        modules[domain] = rel
    manifest = m.model_copy(update={"tables": tables, "tools_modules": modules}).model_dump()
    files["env/manifest.json"] = json.dumps(manifest, indent=1).encode()
    return files, "env/manifest.json"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "x"


def execute_episodes(
    environment: Environment | str | Path,
    episodes: Sequence[Any],
    sandbox_settings: SandboxSettings | None = None,
    *,
    include_final_state: FinalState = False,
    per_call_timeout_s: float | None = DEFAULT_PER_CALL_TIMEOUT_S,
) -> list[EpisodeResult]:
    """Run the episodes in one sandboxed worker process. Raises :class:`WorkerError` when the
    worker as a whole fails (the message says why: timeout, memory, import error, ...)."""
    settings = sandbox_settings or SandboxSettings()
    env = environment if isinstance(environment, Environment) else load_environment(environment)
    files, manifest_rel = bundle_environment(env)
    request = {
        "environment": manifest_rel,
        "episodes": _normalize_episodes(episodes),
        "include_final_state": include_final_state,
        "per_call_timeout_s": per_call_timeout_s,
    }
    files["request.json"] = json.dumps(request).encode()
    result = run_sandboxed(
        [sys.executable, "-m", "agentskiller.runtime.worker", "request.json", "response.json"],
        files=files,
        collect=["response.json"],
        max_file_bytes=max(settings.max_output_bytes, 64 * 2**20),
        **settings.kwargs(),
    )
    if not result.ok or "response.json" not in result.files:
        raise WorkerError(f"worker failed: {result.describe()}", result)
    try:
        resp = json.loads(result.files["response.json"])
        return [EpisodeResult.model_validate(e) for e in resp["episodes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkerError(f"worker wrote an invalid response: {exc}", result) from exc


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m agentskiller.runtime.worker request.json response.json", file=sys.stderr)
        return 2
    req_path, resp_path = Path(args[0]), Path(args[1])
    request = json.loads(req_path.read_text(encoding="utf-8"))
    manifest_path = req_path.parent / request["environment"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    env = environment_from_manifest(manifest, manifest_path.parent, source=manifest_path)
    resp = run_request(
        env,
        request.get("episodes", []),
        include_final_state=_final_state_option(request.get("include_final_state", False)),
        per_call_timeout_s=request.get("per_call_timeout_s", DEFAULT_PER_CALL_TIMEOUT_S),
    )
    # Write next to the target and rename: a killed worker leaves no half-written response.
    with tempfile.NamedTemporaryFile(
        "w", dir=resp_path.parent or ".", delete=False, suffix=".tmp", encoding="utf-8"
    ) as fh:
        json.dump(resp, fh, ensure_ascii=False, allow_nan=False)
    Path(fh.name).replace(resp_path)
    return 0


def _final_state_option(value: Any) -> FinalState:
    return "changed" if value == "changed" else bool(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
