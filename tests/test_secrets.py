"""The API key never reaches the disk, the logs or a request body.

Looks at the very runs of test_workflow_openai.py (memoised per session): a successful one,
one with 30 % faults (retries, repairs and their warnings) and one that fails outright (error
messages and tracebacks). The key is a fresh random value per session, so a single hit
anywhere is a leak.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflow_openai import KEY_ENV, SECRET, OpenAIRun, shared_run

RUN_KINDS = ("clean", "faulty", "dead")


@pytest.fixture(scope="module", params=RUN_KINDS)
def run(request, tmp_path_factory) -> OpenAIRun:
    return shared_run(request.param, tmp_path_factory)


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def test_the_secret_is_in_no_file_of_the_run(run):
    work = run.work
    # the places that matter must exist, or "no hits" would prove nothing
    present = {
        "logs": (work / "logs").is_dir(),
        ".snakemake": (work / ".snakemake").is_dir(),
        "config": (work / "config.yaml").is_file(),
    }
    if run.ok:
        present["outputs"] = any((work / "outputs").rglob("*.json"))
        present["cache"] = any((work / ".llm_cache").rglob("*.json"))
        present["metadata"] = any((work / ".snakemake" / "metadata").rglob("*"))
    assert all(present.values()), present
    # the config names the variable, never its value
    assert KEY_ENV in (work / "config.yaml").read_text()

    # everything in the run directory: outputs/, logs/, benchmarks/, the LLM cache,
    # .snakemake/ (metadata, job scripts, logs), and any scratch file
    assert files_holding(work, SECRET.encode()) == []
    # and what Snakemake printed
    assert SECRET not in run.output


def test_the_secret_travels_only_in_the_authorization_header(run):
    chats = run.chat_requests()
    assert chats
    for rec in chats:
        assert rec.headers.get("authorization") == f"Bearer {SECRET}", rec.headers.get("authorization")
        assert SECRET.encode() not in rec.raw
        others = {k: v for k, v in rec.headers.items() if k != "authorization"}
        assert SECRET not in repr(others)
