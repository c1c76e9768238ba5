"""The artifact layer: damaged upstream artifacts fail the job with a message naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentskiller import artifacts
from agentskiller.artifacts import ArtifactError
from agentskiller.jobs import StepContext
from agentskiller.steps.catalog import s05_tool_lists

FIX = Path(__file__).resolve().parent / "fixtures" / "s14" / "outputs"
BLUEPRINT = FIX / "blueprints" / "ClinicBooking.json"
META = {"step": "s04", "schema_version": 1, "provider": "offline", "seed": 7, "inputs": {}}


def _truncated(src: Path, dst: Path) -> Path:
    text = src.read_text()
    dst.write_text(text[: len(text) // 2])
    return dst


def test_truncated_json_names_the_file(tmp_path):
    bad = _truncated(BLUEPRINT, tmp_path / "ClinicBooking.json")
    with pytest.raises(ArtifactError, match=str(bad)):
        artifacts.load_blueprint(bad)


def test_schema_mismatch_names_file_and_schema(tmp_path):
    data = json.loads(BLUEPRINT.read_text())
    data["tools"] = "not a list"
    bad = tmp_path / "bp.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as exc:
        artifacts.require_blueprint(bad)
    assert str(bad) in str(exc.value) and "schemas/blueprint.schema.json" in str(exc.value)
    assert "tools" in str(exc.value)


def test_missing_artifact_is_an_error_not_a_quarantine(tmp_path):
    with pytest.raises(ArtifactError, match="missing artifact"):
        artifacts.read(tmp_path / "nope.json")
    # a quarantined artifact is not an error: its reason is passed on
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"status": "failed", "reason": "s04: no valid blueprint"}))
    assert artifacts.failure_reason(failed) == "s04: no valid blueprint"
    assert artifacts.first_failure([("s04 blueprint", failed)]) == ("s04 blueprint", "s04: no valid blueprint")


def test_checkers_catching_valueerror_never_swallow_it():
    assert not issubclass(ArtifactError, ValueError)


def test_a_step_fails_on_a_truncated_input_instead_of_quarantining(tmp_path):
    bad = _truncated(BLUEPRINT, tmp_path / "ClinicBooking.json")
    out = tmp_path / "tool_lists" / "ClinicBooking.json"
    ctx = StepContext.from_paths(
        "s05", {"seed": 7}, inputs={"blueprint": bad}, outputs={"tool_list": out}, wildcards={"domain": "ClinicBooking"}
    )
    with pytest.raises(ArtifactError, match=str(bad)):
        s05_tool_lists.run(ctx)
    assert not out.exists()  # nothing written: a resume redoes the job


def test_the_same_step_quarantines_a_failed_upstream_unit(tmp_path):
    failed = tmp_path / "ClinicBooking.json"
    failed.write_text(
        json.dumps({"domain": "ClinicBooking", "status": "failed", "reason": "no valid blueprint", "meta": META})
    )
    out = tmp_path / "tool_lists" / "ClinicBooking.json"
    ctx = StepContext.from_paths(
        "s05",
        {"seed": 7},
        inputs={"blueprint": failed},
        outputs={"tool_list": out},
        wildcards={"domain": "ClinicBooking"},
    )
    s05_tool_lists.run(ctx)
    written = json.loads(out.read_text())
    assert written["status"] == "failed" and "no valid blueprint" in written["reason"]


def test_a_directory_output_appears_whole_with_its_snakemake_timestamp(tmp_path):
    """Built in a sibling, renamed into place; Snakemake's directory() timestamp is already in
    it, so a kill between the rename and Snakemake's bookkeeping leaves the same bytes."""
    import pytest as _pytest

    from agentskiller import io as aio
    from agentskiller.jobs import SNAKEMAKE_DIR_MARKER

    out = tmp_path / "db"
    with aio.atomic_dir(out, marker=SNAKEMAKE_DIR_MARKER) as d:
        (d / "a.json").write_text("{}")
        assert not out.exists()
    assert sorted(p.name for p in out.iterdir()) == [SNAKEMAKE_DIR_MARKER, "a.json"]
    assert (out / SNAKEMAKE_DIR_MARKER).read_bytes() == b""
    with _pytest.raises(RuntimeError), aio.atomic_dir(out, marker=SNAKEMAKE_DIR_MARKER) as d:
        (d / "b.json").write_text("{}")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == [SNAKEMAKE_DIR_MARKER, "a.json"]
    assert not list(tmp_path.glob(".db.*"))
