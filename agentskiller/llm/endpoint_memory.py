"""What the openai provider learned about an endpoint's models, kept across jobs.

A server that rejects ``response_format: json_schema`` (llama.cpp), or a reasoning model that
rejects ``temperature``, costs one failing request to find out. Without memory every job (and
a run has hundreds) pays it again, so the findings go to ``<llm.cache_dir>/endpoints.json``::

    {"format": 1, "endpoints": {"http://host:8000/v1": {"Qwen/QwQ-32B": {
        "response_format": "json_object", "dropped_params": ["temperature"],
        "max_tokens_param": "max_tokens"}}}}

Keys are the base URL without any user:password part, and the model name; never the API key.
Writes are atomic (temp file + rename) and merge with what is on disk just before writing;
two jobs learning at the same moment may lose one finding, which costs one request later.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import io

FILE_NAME = "endpoints.json"
FORMAT = 1

log = logging.getLogger("agentskiller.llm.openai")


class ModelQuirks(BaseModel):
    model_config = ConfigDict(extra="ignore")
    response_format: str | None = None  # json_schema | json_object | text, once one worked
    dropped_params: list[str] = Field(default_factory=list)
    max_tokens_param: str = "max_tokens"


def endpoint_id(base_url: str) -> str:
    """The base URL without credentials or a trailing slash (never a secret in the file)."""
    parts = urlsplit(base_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class EndpointMemory:
    def __init__(self, cache_dir: str | Path, endpoint: str, read: bool = True, write: bool = True) -> None:
        self.path = Path(cache_dir) / FILE_NAME
        self.endpoint = endpoint_id(endpoint)
        self.read_enabled = read
        self.write_enabled = write
        self._lock = threading.Lock()

    def _load_all(self) -> dict:
        try:
            data = io.read_json(self.path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("endpoints"), dict):
            log.warning("ignoring %s: unknown layout", self.path)
            return {}
        return data["endpoints"]

    def load(self) -> dict[str, ModelQuirks]:
        """The known quirks of this endpoint's models (empty when reading is off)."""
        if not self.read_enabled:
            return {}
        models = self._load_all().get(self.endpoint) or {}
        out: dict[str, ModelQuirks] = {}
        for model, raw in models.items() if isinstance(models, dict) else ():
            try:
                out[str(model)] = ModelQuirks.model_validate(raw)
            except ValidationError:
                continue
        return out

    def save(self, model: str, quirks: ModelQuirks) -> None:
        if not self.write_enabled:
            return
        with self._lock:
            endpoints = self._load_all()
            models = endpoints.setdefault(self.endpoint, {})
            if not isinstance(models, dict):
                models = endpoints[self.endpoint] = {}
            models[model] = quirks.model_dump()
            try:
                io.atomic_write_text(
                    self.path, json.dumps({"format": FORMAT, "endpoints": endpoints}, indent=2, sort_keys=True) + "\n"
                )
            except OSError as exc:  # memory is an optimisation: a read-only disk must not fail the job
                log.warning("could not write %s: %s", self.path, exc)
