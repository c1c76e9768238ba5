"""``env_version``: a content address of everything a reward depends on.

A reward computed for an episode today is comparable with one computed tomorrow only when
the environment it was played in is the same. ``env_version`` is a short hash of five parts,
each itself a content hash:

* ``code``: the env's tool code (every member domain's ``tools.py``, by domain) and the
  manifest fields that change what the tools do (``simulation_time``, ``tool_prefix``,
  ``namespace``, ``core_entity``);
* ``database``: the canonical hash of the env's initial state (the table files as the
  server loads them: :meth:`agentskiller.runtime.state.State.hash`);
* ``policy``: the policy text (the dataset row's system message);
* ``task``: the dataset row without its policy and without ``env_version`` itself: first
  message, scenario, tools, golden calls, expected outputs, state hashes, task kind,
  expected answer, refusal, grounding, difficulty, provenance IDs;
* ``simulator``: the simulated user's version: the version of the LLM user's prompt file
  (``agentskiller/prompts/rollout.yaml``) and the offline user's name
  (``rollout.offline_user.NAME``, bumped when its behaviour changes).

Every dataset row carries ``env_version`` (all five parts); ``dataset/tasks_stats.json``
carries each env's version without a task (``per_env.<env>.env_version``: code, database,
policy, simulator). Nothing else goes in: file paths, timestamps, the machine, the order
the tables are listed in or the JSON formatting of a table file do not change it, so the
version changes when one of its inputs changes, and only then. Format:
``ev1-<16 hex digits>`` (the first 64 bits of a sha256).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "PREFIX",
    "PARTS",
    "code_hash",
    "database_hash",
    "policy_hash",
    "task_hash",
    "simulator_version",
    "env_parts",
    "env_version",
    "row_env_version",
    "row_policy",
    "load_env_parts",
]

PREFIX = "ev1"
#: the parts of a row's version, in this order; an env's own version has all but "task"
PARTS = ("code", "database", "policy", "task", "simulator")
#: manifest fields that change what the tool code does
_MANIFEST_FIELDS = ("core_entity", "namespace", "simulation_time", "tool_prefix")


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def code_hash(environment: Any) -> str:
    """The env's tool code by domain, plus the manifest fields that change its behaviour.
    ``environment``: an :class:`agentskiller.runtime.environment.Environment`."""
    m = environment.manifest
    body = {
        "modules": {d: _sha(Path(p).read_bytes()) for d, p in sorted(environment.module_paths.items())},
        "manifest": {k: getattr(m, k) for k in _MANIFEST_FIELDS},
    }
    return _sha(_canonical(body))


def database_hash(environment: Any) -> str:
    """The canonical hash of the env's initial state (table content, not file bytes)."""
    return environment.initial_state().hash()


def policy_hash(policy: str) -> str:
    return _sha(policy)


def task_hash(row: Mapping[str, Any]) -> str:
    """A dataset row's task content: the row without ``env_version`` and without the policy
    (the system message, a part of its own)."""
    body = {k: v for k, v in row.items() if k not in ("env_version", "messages")}
    body["messages"] = [m for m in row.get("messages") or [] if m.get("role") != "system"]
    return _sha(_canonical(body))


def simulator_version() -> str:
    """The simulated user's version: the LLM user's prompt file version and the offline
    user's name."""
    from agentskiller.prompts import prompt_version
    from rollout.offline_user import NAME

    return f"rollout-prompt-v{prompt_version('rollout')}+{NAME}"


def env_parts(environment: Any, policy: str, simulator: str | None = None) -> dict[str, str]:
    """The parts of an env's version that do not depend on a task."""
    return {
        "code": code_hash(environment),
        "database": database_hash(environment),
        "policy": policy_hash(policy),
        "simulator": simulator if simulator is not None else simulator_version(),
    }


def env_version(parts: Mapping[str, str]) -> str:
    """``ev1-<16 hex>`` of the given parts (an env's: code, database, policy, simulator; a
    row's: the same plus task)."""
    known = {k: parts[k] for k in PARTS if k in parts}
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown env_version parts: {sorted(unknown)}")
    return f"{PREFIX}-{_sha(_canonical(known))[:16]}"


def row_policy(row: Mapping[str, Any]) -> str:
    """A dataset row's policy: its system message."""
    return next((m.get("content") or "" for m in row.get("messages") or [] if m.get("role") == "system"), "")


def row_env_version(row: Mapping[str, Any], parts: Mapping[str, str]) -> str:
    """A dataset row's version: its env's code, database and simulator ``parts``
    (:func:`env_parts`), the row's own policy (its system message) and its task."""
    return env_version({**parts, "policy": policy_hash(row_policy(row)), "task": task_hash(row)})


def load_env_parts(server: str | Path, policy: str, simulator: str | None = None) -> dict[str, str]:
    """:func:`env_parts` for a server directory (``servers/{domain}`` or
    ``cross/{pair}/server``), its ``report.json`` or a manifest file. Reads JSON and the
    tool code's bytes only: nothing generated runs here."""
    from agentskiller.runtime.environment import load_environment

    return env_parts(load_environment(server), policy, simulator)
