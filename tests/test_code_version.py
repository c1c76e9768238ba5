"""The rules' ``code`` param covers every library file a job really runs (agentskiller/code_version.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentskiller import code_version as cv

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _script_modules(script: Path) -> list[str]:
    mods = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agentskiller"):
            mods += [
                f"{node.module}.{a.name}" if cv.module_path(f"{node.module}.{a.name}") else node.module
                for a in node.names
            ]
    return mods


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_static_closure_covers_what_the_job_imports(script):
    """Importing the script's step module (and running nothing) loads a subset of the derived files."""
    code = (
        "import json, sys\n"
        f"for m in {_script_modules(script)!r}: __import__(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('agentskiller'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    derived = cv.closure([], script)
    assert loaded - derived == set()


def test_llm_steps_include_their_offline_handler_and_prompt():
    files = {p.relative_to(cv.LIB_DIR).as_posix() for p in cv.files_for(ROOT / "scripts" / "tasks.py")}
    assert "llm/offline/handlers/s14_templates.py" in files
    assert "prompts/s14.yaml" in files
    assert "steps/tasks/s14_templates.py" in files
    assert any(f.startswith("llm/offline/catalog/") for f in files)


def test_an_edit_reaches_exactly_the_rules_that_use_the_module():
    """An edit of a step module changes the code version of the rules that import it, no others
    (later rules then rerun because their input files change, as Snakemake does anyway)."""

    def using(rel: str) -> set[str]:
        return {s.stem for s in SCRIPTS if cv.LIB_DIR / rel in cv.files_for(s)}

    assert using("steps/tasks/s14_templates.py") == {"tasks"}
    assert using("steps/tasks/task_env.py") == {"tasks", "queries", "pair_server"}
    assert "server" in using("steps/domains/contract_tests.py")
    assert "pair_server" in using("steps/domains/contract_tests.py")


def test_code_version_changes_with_a_file(tmp_path, monkeypatch):
    before = cv.code_version(ROOT / "scripts" / "blueprint.py")
    target = cv.LIB_DIR / "steps/catalog/s05_tool_lists.py"
    original = target.read_bytes()
    real = Path.read_bytes

    def patched(self):
        return original + b"\n# edited\n" if self == target else real(self)

    monkeypatch.setattr(Path, "read_bytes", patched)
    assert cv.code_version(ROOT / "scripts" / "blueprint.py") != before
    assert cv.code_version(ROOT / "scripts" / "topics.py") == cv.code_version(ROOT / "scripts" / "topics.py")


# ------------------------------------------------------------ the cache between processes
def test_the_cached_list_gives_the_same_version_and_is_read_back(tmp_path, monkeypatch):
    cache = tmp_path / "code_files.json"
    script = ROOT / "scripts" / "blueprint.py"
    monkeypatch.setattr(cv, "_STORES", {})
    version = cv.code_version(script, cache_file=cache)
    assert version == cv.code_version(script)
    assert str(script) in json.loads(cache.read_text())["scripts"]
    # a new process (no stores in memory) takes the list from the file, without parsing
    monkeypatch.setattr(cv, "_STORES", {})
    monkeypatch.setattr(cv, "files_for", lambda s: pytest.fail("re-derived a cached list"))
    assert cv.code_version(script, cache_file=cache) == version


def test_a_changed_package_file_or_script_derives_the_list_again(tmp_path, monkeypatch):
    cache = tmp_path / "code_files.json"
    script = tmp_path / "blueprint.py"
    script.write_text((ROOT / "scripts" / "blueprint.py").read_text())
    monkeypatch.setattr(cv, "_STORES", {})
    first = cv.code_version(script, cache_file=cache)
    derived = []
    real = cv.files_for

    def counting(s):
        derived.append(s)
        return real(s)

    monkeypatch.setattr(cv, "files_for", counting)
    # any package file changed (name, mtime or size): every list is derived again
    monkeypatch.setattr(cv, "_STORES", {})
    monkeypatch.setattr(cv, "_fingerprint", lambda: "another tree")
    assert cv.code_version(script, cache_file=cache) == first
    assert len(derived) == 1
    # the script itself changed: its list is derived again and follows the new import
    script.write_text(script.read_text() + "import agentskiller.steps.tasks.s16_tasks  # noqa\n")
    for memo in (cv._parse, cv._imports, cv._constants):  # a new process would not have them
        memo.cache_clear()
    assert cv.code_version(script, cache_file=cache) != first
    assert len(derived) == 2
    assert cv.LIB_DIR / "steps/tasks/s16_tasks.py" in cv.files_for(script)
