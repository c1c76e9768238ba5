"""What an episode did: its tool calls in order, and what kind of tool each one calls.

:func:`extract_calls` reads the assistant messages' ``tool_calls`` (OpenAI format,
``function.arguments`` a JSON string or an object) in order, with the index of the message
that made each call, so the policy checks can find the user turn before it.

:class:`ToolCatalog` knows, for an env, each exposed tool's member domain (a pair exposes
``A__tool`` / ``B__tool``; a single domain bare names) and kind (``authorize``, ``read``,
``search``, ``compute``, ``create``, ``update``, ``delete``), from the member blueprints
(``blueprints/{domain}.json``). Without a blueprint the kinds are unknown: a tool whose
bare name starts with ``authorize`` is taken as the authorization tool, and a call counts
as a write when its replay changed the state (so a refused write attempt of an unknown
tool is not seen as one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller.models.blueprint import WRITE_KINDS

__all__ = ["AgentCall", "ToolCatalog", "extract_calls", "NS_SEP"]

NS_SEP = "__"


@dataclass
class AgentCall:
    """One tool call of an episode."""

    index: int  # position among the episode's tool calls
    message: int  # index into Episode.messages of the assistant message that made it
    name: str
    #: the decoded arguments; None when they are not a JSON object (the call then fails
    #: without reaching the tool, as it did live)
    arguments: dict | None
    call_id: str | None = None


def _decode(raw: Any) -> dict | None:
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            val = json.loads(raw)
        except ValueError:
            return None
        return val if isinstance(val, dict) else None
    return None


def extract_calls(messages: Sequence[dict]) -> list[AgentCall]:
    out: list[AgentCall] = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        for tc in msg.get("tool_calls") or []:
            fn = (tc or {}).get("function") or {}
            name = fn.get("name")
            if not isinstance(name, str):
                continue
            out.append(AgentCall(len(out), i, name, _decode(fn.get("arguments")), tc.get("id")))
    return out


@dataclass
class ToolCatalog:
    env: str
    domains: list[str]
    #: exposed name -> (domain, kind or None)
    tools: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: prefix -> domain (pairs)
    prefixes: dict[str, str] = field(default_factory=dict)
    #: "blueprints" when every member's blueprint was found, else "names"
    source: str = "names"

    @classmethod
    def for_env(cls, manifest: Any, blueprint_dirs: Iterable[Path], tool_names: Iterable[str] = ()) -> ToolCatalog:
        """``manifest``: the env's EnvironmentManifest; ``blueprint_dirs``: directories that
        may hold ``{domain}.json`` (first hit wins); ``tool_names``: the names the env
        advertises (used when a blueprint is missing)."""
        domains = list(manifest.domains)
        cross = len(domains) > 1
        prefixes: dict[str, str] = {}
        for d in domains:
            p = (manifest.tool_prefix or {}).get(d)
            if p is None and cross:
                p = d
            if p:
                prefixes[p] = d
        cat = cls(env=manifest.env, domains=domains, prefixes=prefixes)
        found = 0
        dirs = [Path(d) for d in blueprint_dirs]
        for d in domains:
            bp = _read_blueprint(d, dirs)
            if bp is None:
                continue
            found += 1
            prefix = next((p for p, dom in prefixes.items() if dom == d), "")
            for t in bp.get("tools") or []:
                if isinstance(t, dict) and isinstance(t.get("name"), str):
                    name = f"{prefix}{NS_SEP}{t['name']}" if prefix else t["name"]
                    cat.tools[name] = (d, t.get("kind"))
        cat.source = "blueprints" if found == len(domains) else "names"
        for name in tool_names:
            if name not in cat.tools:
                d = cat.domain_of(name)
                cat.tools[name] = (d, "authorize" if cat.bare(name).startswith("authorize") else None)
        return cat

    def bare(self, name: str) -> str:
        head, sep, tail = name.partition(NS_SEP)
        return tail if sep and head in self.prefixes else name

    def domain_of(self, name: str) -> str:
        if name in self.tools:
            return self.tools[name][0]
        head, sep, _ = name.partition(NS_SEP)
        if sep and head in self.prefixes:
            return self.prefixes[head]
        return self.domains[0] if len(self.domains) == 1 else ""

    def kind(self, name: str) -> str | None:
        entry = self.tools.get(name)
        if entry is not None and entry[1] is not None:
            return entry[1]
        return "authorize" if self.bare(name).startswith("authorize") else None

    def is_write(self, name: str) -> bool:
        return self.kind(name) in WRITE_KINDS

    def is_authorize(self, name: str) -> bool:
        return self.kind(name) == "authorize"


def _read_blueprint(domain: str, dirs: list[Path]) -> dict | None:
    for d in dirs:
        p = d / f"{domain}.json"
        if p.is_file():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("status") != "failed":
                return data
    return None
