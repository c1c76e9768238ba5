"""Shared pytest fixtures. Other test modules may append fixtures here."""

from __future__ import annotations

import io as _io
import json
import logging
import os
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


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The whole workflow on the default offline config, run once per test session with
    `snakemake --cores 2` in a scratch directory: (workdir, RunResult, seconds)."""
    import time

    from workflow_helpers import snakemake

    given = os.environ.get("AGENTSKILLER_RUN_DIR")
    if given:  # reuse a finished run (developer convenience)
        return Path(given), None, 0.0
    work = tmp_path_factory.mktemp("default_run")
    t0 = time.perf_counter()
    res = snakemake(work, "--cores", "2")
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0, res.output[-6000:]
    print(f"\nfull default run: {elapsed:.1f} s")
    return work, res, elapsed


# ------------------------------------------------- the servers of the default run
@pytest.fixture(scope="session")
def outputs_dir(request) -> Path:
    """The servers of the shared default workflow run (or of AGENTSKILLER_OUTPUTS)."""
    given = os.environ.get("AGENTSKILLER_OUTPUTS")
    if given:
        path = Path(given).resolve()
        if not (path / "servers").is_dir():
            pytest.fail(f"AGENTSKILLER_OUTPUTS={given} has no servers/ directory")
        return path
    work, _, _ = request.getfixturevalue("default_run")
    return work / "outputs"


def passed_servers(outputs: Path) -> list[Path]:
    out = []
    for report in sorted((outputs / "servers").glob("*/report.json")):
        if json.loads(report.read_text()).get("status") == "passed":
            out.append(report.parent)
    return out


@pytest.fixture(scope="session")
def servers(outputs_dir) -> list[Path]:
    found = passed_servers(outputs_dir)
    assert found, f"no passed servers under {outputs_dir / 'servers'}"
    return found
