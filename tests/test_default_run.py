"""Acceptance checks on the artifacts of the shared default offline run (conftest
``default_run``): environments (s06-s09) and the dataset (s14-s17), checked with nothing but
the artifacts themselves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from agentskiller import io
from test_dataset import replay  # the independent replay: dataset rows + servers + databases only

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.fixture(scope="module")
def out(default_run) -> Path:
    work, _, _ = default_run
    return work / "outputs"


def ok_domains(out: Path) -> list[str]:
    index = io.read_json(out / "blueprints/index.json")
    return [d["domain"] for d in index["domains"] if d["status"] == "ok"]


def passed_domains(out: Path) -> list[str]:
    return [d for d in ok_domains(out) if io.read_json(out / f"servers/{d}/report.json")["status"] == "passed"]


# ------------------------------------------------------------------ s06-s09
def test_every_server_passes_all_contract_tests(out):
    domains = ok_domains(out)
    assert len(domains) >= 6
    for d in domains:
        report = io.read_json(out / f"servers/{d}/report.json")
        assert report["status"] == "passed", (d, report.get("reason"))
        assert report["tests_run"] > 0 and report["tests_passed"] == report["tests_run"], d
        assert report["mcp_tools_match"] is True, d


def _table(path: Path) -> dict:
    t = io.read_json(path)
    assert t.get("status", "ok") == "ok", path
    return t


def test_every_table_has_exact_counts_unique_keys_and_intact_foreign_keys(out):
    entity_n = CONFIG["database"]["entity_records"]
    rel_n = CONFIG["database"]["relationship_records"]
    entity_keys: dict[str, set] = {}
    for path in sorted((out / "database/entities").glob("*.json")):
        t = _table(path)
        keys = [r[t["primary_key"]] for r in t["records"]]
        assert len(keys) == entity_n, (path.name, len(keys))
        assert len(set(keys)) == len(keys), f"duplicate primary keys in {path.name}"
        entity_keys[t["table"]] = set(keys)
    assert entity_keys
    checked_fks = 0
    for d in ok_domains(out):
        bp = io.read_json(out / f"blueprints/{d}.json")
        for rel in bp["relationships"]:
            t = _table(out / f"database/{d}/{rel['name']}.json")
            keys = [r[t["primary_key"]] for r in t["records"]]
            assert len(keys) == rel_n, (d, rel["name"], len(keys))
            assert len(set(keys)) == len(keys), (d, rel["name"], "duplicate primary keys")
            for col in rel["columns"]:
                if not col.get("references"):
                    continue
                target = entity_keys[col["references"]]
                for r in t["records"]:
                    if r.get(col["name"]) is None and col.get("nullable"):
                        continue
                    assert r[col["name"]] in target, (d, rel["name"], col["name"], r[col["name"]])
                    checked_fks += 1
    assert checked_fks > 0


# ------------------------------------------------------------------ s14-s17
def test_at_least_five_valid_queries_per_passed_domain(out):
    counts = {}
    for d in passed_domains(out):
        rows = [r for r in io.read_jsonl(out / f"queries/{d}.jsonl") if r.get("status", "ok") == "ok"]
        counts[d] = len(rows)
    assert counts and all(n >= 5 for n in counts.values()), counts


def test_every_golden_trajectory_replays_to_the_recorded_state(out):
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    assert rows
    reached = sum(replay(r, out / "servers") == r["final_state_hash"] for r in rows)
    assert reached == len(rows), f"{reached}/{len(rows)} rows reached their final state hash"


def test_dataset_loads_with_datasets(out):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(out / "dataset/train.jsonl"), split="train")
    assert len(ds) == len(io.read_jsonl(out / "dataset/train.jsonl"))
    assert {"messages", "tools", "env", "domains", "cross_domain"} <= set(ds.column_names)


def test_known_facts_hold_no_relationship_keys_unless_the_user_holds_them(out):
    checked = 0
    for d in passed_domains(out):
        bp = io.read_json(out / f"blueprints/{d}.json")
        rel_keys: dict[str, str] = {}
        for rel in bp["relationships"]:
            t = io.read_json(out / f"database/{d}/{rel['name']}.json")
            rel_keys.update({str(r[t["primary_key"]]): rel["name"] for r in t["records"]})
        templates = {t["template_id"]: t for t in io.read_json(out / f"task_templates/{d}.json")["templates"]}
        for q in io.read_jsonl(out / f"queries/{d}.jsonl"):
            tpl = templates[q["template_id"]]
            held_tables = {s["table"] for s in tpl["slots"] if s["name"] in tpl.get("user_holds", [])}
            for fact in q["known_facts"]:
                checked += 1
                table = rel_keys.get(str(fact["value"]))
                assert table is None or table in held_tables, (d, q["query_id"], fact)
    assert checked > 0


def test_stats_count_what_the_dataset_holds(out):
    stats = io.read_json(out / "dataset/stats.json")
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    per_env = Counter(r["env"] for r in rows)
    for env, n in per_env.items():
        assert stats["per_env"][env]["queries"] == n
