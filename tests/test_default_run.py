"""Acceptance checks on the artifacts of the shared default offline run (conftest
``default_run``): environments (s06-s09) and the dataset (s14-s17), checked with nothing but
the artifacts themselves."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_dataset import replay  # the independent replay: dataset rows + servers + databases only

from agentskiller import io

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


def replay_row(row: dict, out: Path) -> str:
    """The dataset replay on the env's server: ``servers/{domain}`` or ``cross/{pair}/server``."""
    if "+" in row["env"]:
        return replay({**row, "env": "server"}, out / "cross" / row["env"])
    return replay(row, out / "servers")


def test_every_golden_trajectory_replays_to_the_recorded_state(out):
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    assert rows and any(r["cross_domain"] for r in rows)
    reached = sum(replay_row(r, out) == r["final_state_hash"] for r in rows)
    assert reached == len(rows), f"{reached}/{len(rows)} rows reached their final state hash"


def test_tasks_are_solvable_from_the_rows_alone(out):
    """Issue "solvable tasks": the figures of agentskiller.reporting.task_audit, which replays
    each row and looks for every golden-call argument in the instruction, the known facts and
    the earlier results - never in the stored grounding map."""
    from agentskiller.reporting.task_audit import audit

    rows = io.read_jsonl(out / "dataset/train.jsonl")
    fig = audit(rows, out)
    assert fig["rows"] >= 150
    assert fig["grounded_share"] == 1.0, fig["ungrounded_examples"]
    assert fig["list_calls"] > 0 and fig["list_calls_empty"] == 0 and fig["list_calls_missing_next_target"] == 0
    for kind in ("action", "lookup", "refusal", "auth_failure"):
        assert fig["task_kinds"].get(kind, 0) >= 0.10, fig["task_kinds"]
    done, total = fig["refusal_and_auth_failure_rows_state_unchanged"].split("/")
    assert done == total and int(total) > 0
    assert fig["rows_changing_a_created_record_share"] <= 0.05
    assert fig["time_window_violations"] == 0
    assert fig["distinct_openings_4_share"] >= 0.5 and fig["near_duplicate_pairs_share"] <= 0.05, fig
    # the stored map agrees that every argument has a source
    assert all(g["source"] for r in rows for call in r["grounding"] for g in call)


def test_refusal_rows_name_a_rule_the_server_enforces(out):
    from agentskiller.reporting.task_audit import server_dir
    from agentskiller.runtime.environment import load_environment

    rows = [r for r in io.read_jsonl(out / "dataset/train.jsonl") if r["task_kind"] == "refusal"]
    assert rows
    for r in rows:
        forbidden = r["refusal"]
        policy = r["messages"][0]["content"]
        assert f"RULE: {forbidden['rule']}" in policy or forbidden["rule"] in policy, forbidden["rule"]
        session = load_environment(server_dir(out, r["env"])).new_session()
        for call in r["golden_calls"]:
            assert session.call(call["function"]["name"], json.loads(call["function"]["arguments"])).ok
        before = session.state.hash()
        rec = session.call(forbidden["name"], json.loads(forbidden["arguments"]))
        assert not rec.ok and session.state.hash() == before == r["initial_state_hash"], (r["id"], rec)


def test_lookup_rows_record_an_answer_the_user_does_not_state(out):
    rows = [r for r in io.read_jsonl(out / "dataset/train.jsonl") if r["task_kind"] == "lookup"]
    assert rows
    for r in rows:
        assert r["expected_answer"], r["id"]
        assert all(c["expect"] == "ok" for c in r["golden_calls"])
        assert r["difficulty"]["writes"] == 0


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


# ------------------------------------------------------------------ s10-s13 and pairs
def kept_pairs(out: Path) -> list[str]:
    return [p["pair"] for p in io.read_json(out / "cross/combinations.json")["pairs"]]


def test_at_least_two_pairs_are_built_and_served(out):
    pairs = kept_pairs(out)
    assert len(pairs) >= 2, io.read_json(out / "cross/combinations.json")["pruned"]
    for pair in pairs:
        report = io.read_json(out / f"cross/{pair}/server/report.json")
        assert report["status"] == "passed", (pair, report["reason"])
        assert report["checks"]["episode"]["passed"] and report["checks"]["mcp"]["tools_match"], pair
        # every Bridge Rule the merged policy states is enforced: a violating call refused, a conforming one ok
        bridge = report["checks"]["bridge"]
        stated = [r["id"] for r in io.read_json(out / f"cross/{pair}/policy.json")["bridge_rules"]]
        assert bridge["passed"] and [r["id"] for r in report["environment"]["bridge"]] == stated, (pair, bridge)
        assert all(r["violating"] and r["conforming"] and not r["failures"] for r in bridge["by_rule"]), pair
        names = [t["function"]["name"] for t in io.read_json(out / f"cross/{pair}/tool_list.json")["tools"]]
        assert len(names) == len(set(names)) and all(n.split("__")[0] in pair.split("+") for n in names)


def test_fused_databases_have_no_collisions_and_intact_foreign_keys(out):
    checked = 0
    for pair in kept_pairs(out):
        db = out / f"cross/{pair}/database"
        manifest = io.read_json(db / "tables.json")
        assert manifest["status"] == "ok", (pair, manifest.get("reason"))
        physical = [p for ns in manifest["namespace"].values() for p in ns.values()]
        owners = Counter(physical)
        entities = {t for t, rel in manifest["tables"].items() if rel.startswith("../../../database/entities/")}
        # a physical table is used by two members only when it is a shared entity table
        assert all(n == 1 or t in entities for t, n in owners.items()), (pair, owners)
        keys = {
            e: {r[t["primary_key"]] for r in t["records"]}
            for e in entities
            for t in [_table(db / manifest["tables"][e])]
        }
        for domain in pair.split("+"):
            bp = io.read_json(out / f"blueprints/{domain}.json")
            for rel in bp["relationships"]:
                physical_name = manifest["namespace"][domain][rel["name"]]
                assert physical_name == f"{domain}_{rel['name']}"
                t = _table(db / manifest["tables"][physical_name])
                for col in rel["columns"]:
                    if col.get("references"):
                        for r in t["records"]:
                            assert r[col["name"]] in keys[col["references"]] or (
                                r[col["name"]] is None and col.get("nullable")
                            ), (pair, physical_name, col["name"])
                            checked += 1
    assert checked > 0


def test_at_least_five_valid_queries_per_pair_and_rows_are_cross_domain(out):
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    for pair in kept_pairs(out):
        queries = [q for q in io.read_jsonl(out / f"queries/{pair}.jsonl") if q.get("status", "ok") == "ok"]
        assert len(queries) >= 5, (pair, len(queries))
        mine = [r for r in rows if r["env"] == pair]
        assert len(mine) == len(queries)
        policy = (out / f"cross/{pair}/policy.md").read_text()
        for r in mine:
            assert r["cross_domain"] is True and r["domains"] == pair.split("+")
            assert r["messages"][0]["content"] == policy
            tools = {t["function"]["name"] for t in json.loads(r["tools"])}
            assert {c["function"]["name"] for c in r["golden_calls"]} <= tools
            touched = {c["function"]["name"].split("__")[0] for c in r["golden_calls"]}
            if r["task_kind"] in ("action", "lookup"):
                assert touched == set(pair.split("+"))
            else:  # the golden path stops at the refused write or the failed authorization
                assert touched <= set(pair.split("+")) and len(r["golden_calls"]) >= 1


# ------------------------------------------------------------------ rollouts, evaluation, trajectories
def test_every_row_is_played_and_judged(out):
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    episodes = [e for p in sorted((out / "rollouts").glob("*.jsonl")) for e in io.read_jsonl(p)]
    verdicts = io.read_jsonl(out / "evaluation/results.jsonl")
    per_task = CONFIG["rollout"]["episodes_per_task"]
    assert len(episodes) == len(verdicts) == per_task * len(rows)
    assert {e["query_id"] for e in episodes} == {r["id"] for r in rows}
    summary = io.read_json(out / "evaluation/summary.json")
    assert summary["episodes"] == len(verdicts) and summary["infra_errors"] == 0
    stats = io.read_json(out / "dataset/stats.json")
    assert stats["rollouts"]["passed"] == summary["passed"]
    assert "## Rollouts and evaluation" in (out / "dataset/card.md").read_text()


def test_trajectories_are_the_passing_episodes_and_load_with_datasets(out, tmp_path):
    verdicts = io.read_jsonl(out / "evaluation/results.jsonl")
    rows = io.read_jsonl(out / "dataset/trajectories.jsonl")
    assert {r["id"] for r in rows} == {v["episode_id"] for v in verdicts if v["passed"]}
    for r in rows:
        assert r["messages"][0]["role"] == "system" and r["messages"][1]["role"] == "user"
        assert all(m["train"] == (m["role"] == "assistant") for m in r["messages"])
        assert r["messages"][-1]["role"] in ("assistant", "user")
        calls = [c for m in r["messages"] for c in m["tool_calls"]]
        answered = {m["tool_call_id"] for m in r["messages"] if m["role"] == "tool"}
        assert {c["id"] for c in calls} == answered  # every call has its result
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "json", data_files=str(out / "dataset/trajectories.jsonl"), split="train", cache_dir=str(tmp_path / "hf_cache")
    )
    assert ds.num_rows == len(rows)


#: a Qwen2.5-style tool-calling chat template (tools in the system turn, <tool_call> tags)
CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{{ messages[0]['content'] }}\n# Tools\n<tools>"
    "{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools><|im_end|>\n{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'system' %}{%- if not tools %}<|im_start|>system\n{{ m.content }}<|im_end|>\n{%- endif %}"
    "{%- elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content or '' }}"
    '{%- for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "arguments": '
    "{{ c.function.arguments }}}</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}{%- endfor %}"
)


def test_trajectories_render_with_a_tool_calling_chat_template(out):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.models import WordLevel

    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")), unk_token="[UNK]"
    )
    tok.chat_template = CHAT_TEMPLATE
    rows = io.read_jsonl(out / "dataset/trajectories.jsonl")
    assert rows
    for r in rows:
        tools = json.loads(r["tools"])
        text = tok.apply_chat_template(r["messages"], tools=tools, tokenize=False)
        calls = [c for m in r["messages"] for c in m["tool_calls"]]
        assert text.count("<tool_call>") == len(calls) and text.count("<tool_response>") == len(calls)
        for c in calls:  # the arguments render as JSON inside the call
            json.loads(json.dumps(json.loads(c["function"]["arguments"])))
            assert f'"name": "{c["function"]["name"]}"' in text


# ------------------------------------------------------------------ rollouts and their evaluation
def test_offline_rollouts_of_the_workflow_pass_at_mistake_rate_zero(out):
    """The workflow's own rollouts (rule rollout, offline simulators, the config's
    rollout.mistake_rate 0) and their evaluation (rule evaluate): at least 95% of the episodes
    pass, every row played, no infrastructure error."""
    assert CONFIG["rollout"]["mistake_rate"] == 0
    summary = io.read_json(out / "evaluation/summary.json")
    rows = io.read_jsonl(out / "dataset/train.jsonl")
    assert summary["episodes"] == len(rows) * CONFIG["rollout"]["episodes_per_task"]
    assert summary["infra_errors"] == 0, summary["categories"]
    assert summary["passed"] >= 0.95 * summary["episodes"], (summary["pass_rate"], summary["categories"])
    episodes = [json.loads(line) for p in sorted((out / "rollouts").glob("*.jsonl")) for line in p.open()]
    assert len(episodes) == summary["episodes"] and not any(e["mistakes"] for e in episodes)


# ------------------------------------------------------------------ interlocked storylines (issue 11)
def test_cross_rows_carry_unstated_links_and_their_rollouts_pass(out):
    """At least 80% of the cross-domain rows hand a value over that the user never states
    (found from the replayed rows alone, task_audit.unstated_links), at least three pairs have
    three such rows, every declared link is one of them, and the linked rows' offline
    rollouts pass at mistake rate 0."""
    from agentskiller.reporting.task_audit import audit

    rows = io.read_jsonl(out / "dataset/train.jsonl")
    cross = [r for r in rows if r["cross_domain"]]
    fig = audit(cross, out)
    assert fig["cross_rows"] == len(cross) > 0
    assert fig["cross_rows_with_unstated_link_share"] >= 0.8, fig["linked_rows_by_pair"]
    assert fig["pairs_with_3_linked_rows"] >= 3, fig["linked_rows_by_pair"]
    confirmed, declared = fig["declared_links_unstated"].split("/")
    assert confirmed == declared and int(declared) > 0
    linked = {r["id"] for r in cross if r["links"]}
    verdicts = [json.loads(line) for line in (out / "evaluation/results.jsonl").open()]
    mine = [v for v in verdicts if v["query_id"] in linked]
    assert mine and all(v["passed"] for v in mine), Counter(v["category"] for v in mine if not v["passed"])
