"""Shared pytest fixtures. Other test modules may append fixtures here."""

from __future__ import annotations

import io as _io
import logging
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
# The package may not be installed (pip install -e) in every environment running the tests.
for _p in (str(REPO_ROOT), str(TESTS_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)


@pytest.fixture
def offline_llm_config(tmp_path: Path) -> dict:
    """The ``llm:`` block for an offline client with a private cache directory."""
    return {
        "provider": "offline",
        "base_url": None,
        "api_key_env": "OPENAI_API_KEY",
        "models": {"text": "offline-text", "code": "offline-code"},
        "temperature": 0.0,
        "max_tokens": 8192,
        "timeout_s": 30,
        "max_retries": 2,
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.01,
        "max_repair_rounds": 3,
        "response_format": "auto",
        "cache_dir": str(tmp_path / "llm_cache"),
        "cache_mode": "read_write",
        "max_concurrency": 4,
        "prices": {},
    }


class LogCapture:
    """A logger whose output is kept in memory (``.text``), like a job's log file."""

    def __init__(self, name: str) -> None:
        self.stream = _io.StringIO()
        self.logger = logging.getLogger(name)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        self.handler.flush()
        return self.stream.getvalue()

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def usage_log(request: pytest.FixtureRequest):
    """A fresh in-memory logger for LLM usage lines; ``.logger`` and ``.text``."""
    cap = LogCapture(f"test.usage.{request.node.name}")
    yield cap
    cap.close()
