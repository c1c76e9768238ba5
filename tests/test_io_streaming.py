"""Streamed JSONL artifacts (agentskiller.io.jsonl_writer / iter_jsonl): written row by row,
validated per row, and atomic: nothing is left at the path (and an older file stays as it was)
when the block fails or a row does not match its schema."""

from __future__ import annotations

import json

import pytest

from agentskiller import io


def _rows(n: int):
    for i in range(n):
        yield {"i": i, "text": f"row {i}"}


def test_rows_are_written_in_order_and_read_back_one_by_one(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with io.jsonl_writer(path) as w:
        for row in _rows(1000):
            w.write(row)
        assert not path.exists()  # nothing at the path until the block ends
    assert w.count == 1000
    it = io.iter_jsonl(path)
    assert next(it) == {"i": 0, "text": "row 0"}
    assert [r["i"] for r in it] == list(range(1, 1000))
    assert path.read_text(encoding="utf-8").splitlines()[1] == json.dumps({"i": 1, "text": "row 1"}, sort_keys=True)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left


def test_an_exception_leaves_no_file(tmp_path):
    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with io.jsonl_writer(path) as w:
            w.write({"i": 0})
            raise RuntimeError("killed half way")
    assert list(tmp_path.iterdir()) == []


def test_an_exception_keeps_the_older_file(tmp_path):
    path = tmp_path / "out.jsonl"
    io.write_jsonl(path, _rows(3))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        io.write_jsonl(path, (r if r["i"] < 2 else (_ for _ in ()).throw(ValueError("boom")) for r in _rows(5)))
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_a_row_that_breaks_its_schema_names_the_row_and_leaves_no_file(tmp_path):
    path = tmp_path / "train.jsonl"
    good = {"i": 0}
    with pytest.raises(io.ArtifactValidationError, match=r"^row 0: .*dataset_row"):
        io.write_jsonl(path, [good], schema="dataset_row")
    assert not path.exists()


def test_write_jsonl_matches_the_list_form_byte_for_byte(tmp_path):
    rows = [{"b": 2, "a": "é"}, {"z": [1, 2], "y": None}]
    io.write_jsonl(tmp_path / "gen.jsonl", iter(rows))
    expected = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    assert (tmp_path / "gen.jsonl").read_text(encoding="utf-8") == expected
    assert io.read_jsonl(tmp_path / "gen.jsonl") == rows
