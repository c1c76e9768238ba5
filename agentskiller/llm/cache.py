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

Hygiene: a job killed in the middle of a write leaves its temp file (``.<name>.*.tmp``);
opening the cache in read_write mode removes those older than :data:`STALE_TMP_S` (a live
writer renames its file within seconds, so concurrent writers are safe). Each entry carries
``checksum``, the sha256 of its canonical JSON without that field; an entry whose content
does not match (bit rot, a hand edit, a foreign tool) is a miss with a warning naming the
file, and the fresh answer replaces it. Entries written before checksums existed have none
and are read as they are.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

from .. import io
from .base import LLMRequestError

CacheMode = Literal["read_write", "read_only", "off"]
CACHE_FORMAT = 1
#: Temp files older than this are leftovers of killed writers.
STALE_TMP_S = 600.0

log = logging.getLogger("agentskiller.llm.cache")


def cache_key(fields: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``fields`` (plus the cache format)."""
    return io.sha256_json({"cache_format": CACHE_FORMAT, **fields})


def entry_checksum(entry: dict) -> str:
    return io.sha256_json({k: v for k, v in entry.items() if k != "checksum"})


def sweep_stale_tmp(root: Path, older_than_s: float = STALE_TMP_S) -> int:
    """Remove temp files of killed writers (``.*.tmp``) in ``root`` and its subfolders that
    were last touched more than ``older_than_s`` ago; returns how many went."""
    cutoff = time.time() - older_than_s
    removed = 0
    dirs = [root]
    try:
        with os.scandir(root) as it:
            dirs += [Path(e.path) for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for d in dirs:
        try:
            with os.scandir(d) as it:
                stale = [
                    e.path
                    for e in it
                    if e.name.startswith(".")
                    and e.name.endswith(".tmp")
                    and e.is_file(follow_symlinks=False)
                    and e.stat(follow_symlinks=False).st_mtime < cutoff
                ]
        except OSError:
            continue
        for path in stale:
            try:
                os.unlink(path)
                removed += 1
            except OSError:  # another job swept it first, or no permission: not ours to fail on
                continue
    if removed:
        log.info("removed %d stale temp file(s) from %s", removed, root)
    return removed


class ResponseCache:
    def __init__(self, root: str | Path, mode: CacheMode = "read_write", sweep: bool = True) -> None:
        if mode not in ("read_write", "read_only", "off"):
            raise ValueError(f"unknown cache mode {mode!r}")
        self.root = Path(root)
        self.mode: CacheMode = mode
        if sweep and mode == "read_write":
            sweep_stale_tmp(self.root)

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
        if "checksum" in entry and entry["checksum"] != entry_checksum(entry):
            log.warning("ignoring cache entry %s: its content does not match its checksum (changed after writing)", p)
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        if self.mode != "read_write":
            return
        full = {k: v for k, v in entry.items() if k != "checksum"} | {"key": key}
        full["checksum"] = entry_checksum(full)
        io.atomic_write_text(self.path(key), json.dumps(full, ensure_ascii=False, sort_keys=True))

    def lookup(self, key: str, task: str) -> dict | None:
        """Like :meth:`get`, but a miss in read_only mode is an error that fails the job
        (:class:`LLMRequestError`, not a content failure a step would quarantine)."""
        entry = self.get(key)
        if entry is None and self.mode == "read_only":
            raise LLMRequestError(f"cache miss in read_only mode for task {task} (key {key[:16]}, cache {self.root})")
        return entry
