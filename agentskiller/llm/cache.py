"""Content-addressed response cache: one JSON file per LLM round.

Key: sha256 of the canonical JSON of everything that determines an answer (provider,
model, task, messages, schema JSON, sampling parameters, response mode, seed and any
provider salt). Never the API key or the base URL: the same request against a new
endpoint or with a rotated key is the same request, and secrets must not leak into file
names or contents.

Layout: ``<cache_dir>/<first 2 hex>/<hash>.json``. Every write goes to a temp file in the
same directory and is renamed into place (``os.replace`` is atomic on POSIX and on the
usual cluster file systems), so concurrent jobs, even on different nodes, never see a half
entry; two writers of the same key simply race to an equivalent file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from .. import io
from .base import LLMError

CacheMode = Literal["read_write", "read_only", "off"]
CACHE_FORMAT = 1

log = logging.getLogger("agentskiller.llm.cache")


def cache_key(fields: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``fields`` (plus the cache format)."""
    return io.sha256_json({"cache_format": CACHE_FORMAT, **fields})


class ResponseCache:
    def __init__(self, root: str | Path, mode: CacheMode = "read_write") -> None:
        if mode not in ("read_write", "read_only", "off"):
            raise ValueError(f"unknown cache mode {mode!r}")
        self.root = Path(root)
        self.mode: CacheMode = mode

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored entry, or None on a miss (a corrupt file counts as a miss)."""
        if not self.enabled:
            return None
        p = self.path(key)
        try:
            with open(p, encoding="utf-8") as fh:
                entry = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Only a foreign tool can produce this (our writes are atomic); recompute.
            log.warning("ignoring unreadable cache entry %s: %s", p, exc)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "response" not in entry:
            log.warning("ignoring malformed cache entry %s", p)
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        if self.mode != "read_write":
            return
        io.atomic_write_text(self.path(key), json.dumps({**entry, "key": key}, ensure_ascii=False, sort_keys=True))

    def lookup(self, key: str, task: str) -> dict | None:
        """Like :meth:`get`, but a miss in read_only mode is an error."""
        entry = self.get(key)
        if entry is None and self.mode == "read_only":
            raise LLMError(f"cache miss in read_only mode for task {task} (key {key[:16]}, cache {self.root})")
        return entry
