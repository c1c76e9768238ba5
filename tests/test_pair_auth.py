"""Per-service authorization and the Bridge Rules of a pair, on the cross fixture's real
DentalCareDesk+PharmacyCareLine pair server (issue 11, parts 3 and 4).

The two attacks of the issue are refused: a write in one member with only the other member
authorized, and the second member authorized as a different person. The refused call leaves
the tables unchanged, so an episode that breaks a rule cannot reach the golden end state.
Without the enforcement (the old shared-user runtime, patched back in) the contract tests'
violating calls succeed: the tests prove the enforcement, not the data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cross_domain import FIXTURE, MEMBERS, PAIR, run_pair_server, run_s12

from agentskiller import io
from agentskiller.artifacts import load_blueprint
from agentskiller.runtime import api
from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.worker import execute_episodes_inprocess
from agentskiller.steps.cross import bridge_tests, pair_server

A, B = MEMBERS


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pair_auth") / "outputs"
    shutil.copytree(FIXTURE, out)
    run_s12(out)
    report = run_pair_server(out)
    assert report["status"] == "passed", report["reason"]
    return out


def _data(out: Path) -> bridge_tests.PairData:
    server = out / f"cross/{PAIR}/server"
    report = io.read_json(server / "report.json")
    bps = [load_blueprint(out / f"blueprints/{d}.json") for d in MEMBERS]
    tasks = pair_server.member_tasks([out / f"tasks/{d}.json" for d in MEMBERS])
    return bridge_tests.PairData.load(bps, report["environment"], server, report["checks"]["episode"]["user"], tasks)


def _session(out: Path):
    return load_environment(out / f"cross/{PAIR}/server").new_session()


def test_a_write_in_one_member_with_only_the_other_authorized_is_refused(served):
    d = _data(served)
    person, write = d.write_call(B)
    s = _session(served)
    before = s.state.hash()
    assert s.call(f"{A}__authorize_patient", {"patient_id": person}).ok
    r = s.call(write["tool"], write["arguments"])
    assert not r.ok and r.error_type == "tool_error" and f"bridge.authorization.{B}" in r.error
    assert r.state_hash_after == before and r.changed_tables == []
    # the same write is the member's to make once it authorized the person itself
    assert s.call(f"{B}__authorize_patient", {"patient_id": person}).ok
    r = s.call(write["tool"], write["arguments"])
    assert r.ok, r.error
    golden_end = r.state_hash_after
    assert golden_end != before
    # the end-state reward: the rule-breaking episode never reaches the golden end state
    attack = _session(served)
    attack.call(f"{A}__authorize_patient", {"patient_id": person})
    attack.call(write["tool"], write["arguments"])
    assert attack.state.hash() == before != golden_end


@pytest.mark.parametrize("first,second", [(A, B), (B, A)])
def test_authorizing_the_second_member_as_another_person_is_refused(served, first, second):
    d = _data(served)
    other = next(p for p in d.people() if p != d.user)
    s = _session(served)
    assert s.call(f"{first}__authorize_patient", {"patient_id": d.user}).ok
    r = s.call(f"{second}__authorize_patient", {"patient_id": other})
    assert not r.ok and "bridge.identity" in r.error
    # nothing switched: the first member still serves the person, the second serves nobody
    assert s.state.auth == {first: d.user} and s.state.user == d.user
    _, read = d.read_call(second)
    r = s.call(read["tool"], read["arguments"])
    assert not r.ok and f"bridge.authorization.{second}" in r.error
    # re-authorizing the same member as the same person is fine (an idempotent repeat)
    assert s.call(f"{first}__authorize_patient", {"patient_id": d.user}).ok
    assert s.call(f"{second}__authorize_patient", {"patient_id": d.user}).ok


def test_pair_report_counts_a_violating_and_a_conforming_test_per_rule(served):
    report = io.read_json(served / f"cross/{PAIR}/server/report.json")
    bridge = report["checks"]["bridge"]
    policy = io.read_json(served / f"cross/{PAIR}/policy.json")
    stated = [r["id"] for r in policy["bridge_rules"]]
    assert [r["id"] for r in report["environment"]["bridge"]] == stated
    assert {r["id"] for r in bridge["by_rule"]} == set(stated)
    assert all(
        r["violating"] >= 1 and r["conforming"] >= 1 and r["passed"] == r["violating"] + r["conforming"]
        for r in bridge["by_rule"]
    )
    assert bridge["tests_passed"] == bridge["tests"] > len(stated)
    io.validate(report, "pair_server_report")


class _SharedUser:
    """The runtime before issue 11: one authorized user shared by every member."""

    @staticmethod
    def user(self):
        return self.state.user

    @staticmethod
    def authorize(self, user_id):
        table = self.table(self.core_entity)
        rec = table.get(user_id)
        if rec is None:
            raise api.ToolError(f"unknown {table.primary_key}: {user_id}")
        self.state.user = rec[table.primary_key]
        return rec

    @staticmethod
    def require_user(self):
        if self.state.user is None:
            raise api.ToolError("not authorized: call the authorization tool first")
        return self.state.user


def _run(out: Path, tests: list[bridge_tests.BridgeTest]) -> dict[str, list[str]]:
    eps = execute_episodes_inprocess(out / f"cross/{PAIR}/server", [t.episode(i) for i, t in enumerate(tests)])
    verdicts: dict[str, list[str]] = {}
    for t, ep in zip(tests, eps, strict=True):
        verdicts.setdefault(f"{t.rule} {t.kind}", []).append(bridge_tests.judge(t, [c.model_dump() for c in ep.calls]))
    return verdicts


def test_the_contract_tests_fail_without_the_enforcement(served, monkeypatch):
    d = _data(served)
    rules = [bridge_tests.BridgeRule.model_validate(r) for r in _derived(served)]
    tests, missing = bridge_tests.derive_tests(rules, d, io.read_json(served / f"cross/{PAIR}/tool_list.json")["tools"])
    assert missing == {}
    with_enforcement = _run(served, tests)
    assert all(v == "" for vs in with_enforcement.values() for v in vs), with_enforcement
    monkeypatch.setattr(api.Context, "user", property(_SharedUser.user))
    monkeypatch.setattr(api.Context, "authorize", _SharedUser.authorize)
    monkeypatch.setattr(api.Context, "require_user", _SharedUser.require_user)
    without = _run(served, tests)
    for key in (
        "bridge.identity violating",
        f"bridge.authorization.{A} violating",
        f"bridge.authorization.{B} violating",
    ):
        assert without[key] and all("succeeded" in v or "refused, but not by the rule" in v for v in without[key]), (
            key,
            without[key],
        )
    # separation is the namespace's, not the authorization's: it holds either way
    assert all(v == "" for v in without[f"bridge.separation.{A} violating"])


def _derived(out: Path) -> list[dict]:
    from agentskiller.models.bridge_rules import derive_bridge_rules

    bps = [load_blueprint(out / f"blueprints/{d}.json") for d in MEMBERS]
    return [json.loads(r.model_dump_json()) for r in derive_bridge_rules(bps)]


def test_an_ordering_rule_refuses_the_later_step_until_the_earlier_succeeded(served):
    """A link-derived ordering rule in the manifest: the session refuses the step before its
    predecessor succeeded, and lets it through afterwards."""
    d = _data(served)
    server = served / f"cross/{PAIR}/server"
    report = io.read_json(server / "report.json")
    _, after = d.keyed_call(A, "get_appointment")
    _, later = d.keyed_call(B, "get_prescription_fill")
    rid = f"bridge.ordering.{later['tool']}.{after['tool']}"
    manifest = dict(report["environment"])
    manifest["bridge"] = [
        *manifest["bridge"],
        {"id": rid, "kind": "ordering", "tool": later["tool"], "after": after["tool"]},
    ]
    ordered = server.parent / "ordered"
    ordered.mkdir()
    io.write_json(ordered / "report.json", {"status": "passed", "environment": manifest})
    rule = bridge_tests.BridgeRule(
        id=rid, kind="ordering", tool=later["tool"], after=after["tool"], names=[], statement="s"
    )
    tests = bridge_tests.ordering_tests(rule, d, [])
    eps = execute_episodes_inprocess(ordered, [t.episode(i) for i, t in enumerate(tests)])
    results = [bridge_tests.judge(t, [c.model_dump() for c in ep.calls]) for t, ep in zip(tests, eps, strict=True)]
    assert results == ["", ""], results
    refused, accepted = eps[0].calls[-1], eps[1].calls[-1]
    assert not refused.ok and rid in refused.error
    assert accepted.ok, accepted.error  # the person's own records: nothing else refuses it
