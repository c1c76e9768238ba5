"""Prompts are data: ``agentskiller/prompts/<step>.yaml``, rendered here.

File layout::

    version: 3                      # bump when the wording changes meaningfully
    blueprint_detail:               # one entry per prompt name
      system: |
        You design ...
      user: |
        Design the domain $domain ...

Templates use :class:`string.Template` (``$name`` / ``${name}``; ``$$`` is a literal
dollar), so JSON braces in prompts need no escaping. The user message always ends with the
structured input data the prompt was made from, as canonical pretty JSON::

    ### Input data (JSON)
    ```json
    {...}
    ```

:func:`extract_context` reads that block back (the fake OpenAI server uses it to answer
like the offline provider). The cache key hashes the rendered messages, so editing a
prompt invalidates exactly the answers it produced.
"""

from __future__ import annotations

import json
import os
import string
import threading
from pathlib import Path
from typing import Any

from agentskiller.yamlload import safe_load

PROMPTS_DIR = Path(__file__).resolve().parent
CONTEXT_HEADER = "### Input data (JSON)"
_FENCE_OPEN = "```json\n"
_FENCE_CLOSE = "\n```"

_cache: dict[tuple[str, int], dict] = {}
_lock = threading.Lock()


class PromptError(KeyError):
    """A prompt file, prompt name or template variable is missing or malformed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _prompts_dir() -> Path:
    # Read at call time so tests (and users experimenting) can point elsewhere.
    env = os.environ.get("AGENTSKILLER_PROMPTS_DIR")
    return Path(env) if env else PROMPTS_DIR


def load(step: str) -> dict:
    """The parsed ``<step>.yaml`` (cached per file modification time)."""
    path = _prompts_dir() / f"{step}.yaml"
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise PromptError(f"no prompt file for step {step!r}: {path}") from None
    key = (str(path), mtime)
    with _lock:
        data = _cache.get(key)
    if data is None:
        data = safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or "version" not in data:
            raise PromptError(f"{path}: a prompt file is a mapping with a 'version' key")
        with _lock:
            _cache[key] = data
    return data


def prompt_version(step: str) -> str:
    return str(load(step)["version"])


def canonical_pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _fill(template: str, values: dict[str, str], where: str) -> str:
    try:
        return string.Template(template).substitute(values)
    except KeyError as exc:
        raise PromptError(f"{where}: template variable ${exc.args[0]} was not given") from None
    except ValueError as exc:
        raise PromptError(f"{where}: bad template: {exc}") from None


def render(step: str, name: str, context: Any, **vars: Any) -> list[dict]:
    """Messages for prompt ``name`` of ``step``: system (if any) + user + input block.

    ``vars`` fill ``$name`` placeholders; non-string values are inserted as canonical
    pretty JSON. Pass the same ``context`` to ``LLMClient.generate``.
    """
    prompts = load(step)
    spec = prompts.get(name)
    if not isinstance(spec, dict) or "user" not in spec:
        raise PromptError(f"prompt {name!r} not found (with a 'user' template) in {step}.yaml")
    values = {k: v if isinstance(v, str) else canonical_pretty(v) for k, v in vars.items()}
    where = f"{step}.yaml:{name}"
    messages = []
    if spec.get("system"):
        messages.append({"role": "system", "content": _fill(str(spec["system"]), values, where).strip()})
    user = _fill(str(spec["user"]), values, where).rstrip()
    user += f"\n\n{CONTEXT_HEADER}\n{_FENCE_OPEN}{canonical_pretty(context)}{_FENCE_CLOSE}"
    messages.append({"role": "user", "content": user})
    return messages


def extract_context(messages: list[dict]) -> Any | None:
    """The input data block of the first user message that has one (inverse of render)."""
    for m in messages:
        content = m.get("content")
        if m.get("role") != "user" or not isinstance(content, str):
            continue
        i = content.rfind(CONTEXT_HEADER + "\n" + _FENCE_OPEN)
        if i < 0:
            continue
        start = i + len(CONTEXT_HEADER) + 1 + len(_FENCE_OPEN)
        end = content.rfind(_FENCE_CLOSE)
        if end < start:
            continue
        try:
            return json.loads(content[start:end])
        except ValueError:
            continue
    return None
