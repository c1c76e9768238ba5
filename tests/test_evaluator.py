"""The evaluator (evaluator/): hand-made episodes of real ClinicBooking rows, each with the
verdict and failure category it must get.

The rows come from the hand-written ClinicBooking fixture run through s14-s17 and the
dataset step once per session (tests/fixtures/s14/pipeline.py); a few tests derive a row
with two writes from a real one by replaying new golden calls on the real server. Replays
run in-process (trusted fixture code) except where the sandboxed worker is the subject.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from fixtures.s14.pipeline import ENV, run_all

from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.sandbox import SandboxSettings
from agentskiller.runtime.worker import execute_episodes_inprocess
from evaluator import build_summary, evaluate_episodes, format_table, load_rows, pass_hat_k
from evaluator.calls import ToolCatalog
from evaluator.checks import is_confirmation, says_value
from evaluator.normalize import canonical_changes, canonicalize, normalize_arguments
from evaluator.play import episode, golden_steps, resolved_golden_calls
from evaluator.run_evaluation import main as cli_main

YES = ("user", "Yes, please go ahead.")
BYE = ("user", "Thanks, that's all.")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def s14(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluator_s14")
    run_all(root)
    return root


@pytest.fixture(scope="session")
def rows(s14) -> dict[str, dict]:
    return load_rows(s14)


@pytest.fixture(scope="session")
def catalog(s14, rows) -> ToolCatalog:
    env = load_environment(s14 / "servers" / ENV)
    return ToolCatalog.for_env(env.manifest, [s14 / "blueprints"])


def _row(rows, kind: str, tool: str | None = None) -> dict:
    for r in sorted(rows.values(), key=lambda r: r["id"]):
        if r["task_kind"] == kind and (tool is None or tool in r["trajectory"]):
            return r
    raise LookupError(f"no {kind} row with {tool}")


def _evaluate(s14, rows, episodes, **kw):
    kw.setdefault("in_process", True)
    return evaluate_episodes(episodes, rows, s14, **kw)


def _one(s14, rows, ep, **kw):
    (v,) = _evaluate(s14, rows, [ep], **kw)
    return v


def _golden(row, catalog, **kw):
    return episode(row, golden_steps(row, catalog.is_write), results=row["expected_outputs"], **kw)


def derive_row(s14: Path, base: dict, calls: list[tuple[str, dict]], suffix: str) -> tuple[dict, dict]:
    """A row like ``base`` whose golden path is ``calls`` (replayed on the real server for
    its outputs and hashes); returns (row, rows-with-it)."""
    env = load_environment(s14 / "servers" / ENV)
    (res,) = execute_episodes_inprocess(env, [[{"tool": n, "arguments": a} for n, a in calls]])
    assert all(c.ok for c in res.calls), [c.error for c in res.calls]
    row = copy.deepcopy(base)
    row["id"] = hashlib.sha256((base["id"] + suffix).encode()).hexdigest()[:16]
    row["golden_calls"] = [
        {"type": "function", "function": {"name": n, "arguments": json.dumps(a)}, "resolve": "{}", "expect": "ok"}
        for n, a in calls
    ]
    row["expected_outputs"] = [json.dumps(c.result) for c in res.calls]
    row["trajectory"] = [n for n, _ in calls]
    row["final_state_hash"] = res.final_state_hash
    return row, {row["id"]: row}


# --------------------------------------------------------------------------- golden plays
def test_every_golden_play_passes(s14, rows, catalog):
    assert {r["task_kind"] for r in rows.values()} == {"action", "lookup", "refusal", "auth_failure"}
    verdicts = _evaluate(s14, rows, [_golden(r, catalog) for r in rows.values()])
    assert len(verdicts) == len(rows)
    for v in verdicts:
        assert v.passed, v.detail
        assert v.category is None and not v.infra_error
        assert v.scores["end_state"] is True and v.scores["policy"] is True
    action = [v for v in verdicts if v.task_kind == "action"]
    assert action and all(v.scores["write_precision"] == 1.0 and v.scores["write_recall"] == 1.0 for v in action)
    lookup = [v for v in verdicts if v.task_kind == "lookup"]
    assert lookup and all(v.scores["answer"] is True for v in lookup)


def test_golden_play_passes_in_the_sandboxed_worker(s14, rows, catalog):
    eps = [_golden(r, catalog) for r in rows.values()]
    eps.append(_golden(_row(rows, "action", "cancel_appointment"), catalog, episode=1))
    sandboxed = evaluate_episodes(eps, rows, s14, sandbox=SandboxSettings(timeout_s=60))
    trusted = _evaluate(s14, rows, eps)
    assert [v.passed for v in sandboxed] == [True] * len(eps)
    assert [v.model_dump() for v in sandboxed] == [v.model_dump() for v in trusted]


# --------------------------------------------------------------------------- failures
def test_skipped_write_is_missing_write(s14, rows, catalog):
    row = _row(rows, "action", "cancel_appointment")
    steps = [s for s in golden_steps(row, catalog.is_write) if not (s[0] == "call" and s[1] == "cancel_appointment")]
    steps = [s for s in steps if s != YES and not (s[0] == "assistant" and "Shall I" in s[1])]
    v = _one(s14, rows, episode(row, steps))
    assert not v.passed and v.category == "missing_write"
    assert v.scores["end_state"] is False and v.scores["write_recall"] == 0.0
    assert v.evidence["missing_writes"][0]["tool"] == "cancel_appointment"


def test_wrong_argument_in_a_write_is_wrong_write_args(s14, rows, catalog):
    row = _row(rows, "action", "book_appointment")
    steps = []
    for s in golden_steps(row, catalog.is_write):
        if s[0] == "call" and s[1] == "book_appointment":
            s = ("call", s[1], {**s[2], "date": "2025-07-01T09:00:00Z"})
        steps.append(s)
    v = _one(s14, rows, episode(row, steps))
    assert not v.passed and v.category == "wrong_write_args"
    assert v.scores["write_precision"] == 0.0 and v.scores["write_recall"] == 0.0
    (w,) = v.evidence["wrong_write_args"]
    assert w["tool"] == "book_appointment" and "2025-07-01T09:00:00Z" in w["got"]


def test_extra_harmless_read_passes(s14, rows, catalog):
    row = _row(rows, "action", "cancel_appointment")
    user = json.loads(row["golden_calls"][0]["function"]["arguments"])["patient_id"]
    steps = golden_steps(row, catalog.is_write)
    steps[1:1] = [("call", "get_patient_profile", {"patient_id": user}), ("call", "count_appointments", {})]
    v = _one(s14, rows, episode(row, steps))
    assert v.passed, v.detail
    assert v.scores["read_recall"] == 1.0 and v.scores["write_precision"] == 1.0


def test_independent_writes_reordered_pass(s14, rows, catalog):
    base = _row(rows, "action", "cancel_appointment")
    calls = resolved_golden_calls(base)
    book = ("book_appointment", {"clinician_id": _clinician(s14), "date": "2025-07-20T10:00:00Z", "reason": "check-up"})
    row, extra = derive_row(s14, base, [*calls, book], "two writes")
    all_rows = {**rows, **extra}
    assert _one(s14, all_rows, _golden(row, catalog)).passed
    # the assistant books first, then cancels
    steps = [("call", *calls[0])]
    for name, args in (book, calls[-1]):
        steps += [("assistant", f"Shall I {name}?"), YES, ("call", name, args)]
    steps += [("assistant", "Both done."), BYE]
    v = _one(s14, all_rows, episode(row, steps))
    assert v.passed, v.detail
    assert v.scores["write_recall"] == 1.0


def test_records_created_in_another_order_pass(s14, rows, catalog):
    base = _row(rows, "action", "book_appointment")
    auth = resolved_golden_calls(base)[0]
    clin = _clinician(s14)
    first = ("book_appointment", {"clinician_id": clin, "date": "2025-07-21T10:00:00Z", "reason": "knee pain"})
    second = ("book_appointment", {"clinician_id": clin, "date": "2025-07-28T10:00:00Z", "reason": "follow-up"})
    row, extra = derive_row(s14, base, [auth, first, second], "two creates")
    all_rows = {**rows, **extra}
    steps = [("call", *auth)]
    for name, args in (second, first):
        steps += [("assistant", "Shall I book it?"), YES, ("call", name, args)]
    steps += [("assistant", "Both booked."), BYE]
    ep = episode(row, steps)
    v = _one(s14, all_rows, ep)
    assert v.passed, v.detail
    # the raw end states differ: appointment_n00001 / n00002 hold the other bookings
    env = load_environment(s14 / "servers" / ENV)
    (res,) = execute_episodes_inprocess(env, [[{"tool": n, "arguments": a} for n, a in (auth, second, first)]])
    assert res.final_state_hash != row["final_state_hash"]


def test_destructive_extra_call_is_extra_write(s14, rows, catalog):
    row = _row(rows, "action", "reschedule_appointment")
    target = resolved_golden_calls(row)[-1][1]["appointment_id"]
    steps = golden_steps(row, catalog.is_write)
    steps[-2:-2] = [
        ("assistant", "Shall I also cancel it?"),
        YES,
        ("call", "cancel_appointment", {"appointment_id": target}),
    ]
    v = _one(s14, rows, episode(row, steps))
    assert not v.passed and v.category == "extra_write"
    assert v.evidence["extra_writes"][0]["tool"] == "cancel_appointment"
    assert v.scores["write_recall"] == 1.0 and v.scores["write_precision"] == 0.5


def test_write_before_authorization_is_unauthorized_write(s14, rows, catalog):
    row = _row(rows, "action", "cancel_appointment")
    calls = resolved_golden_calls(row)
    cancel = calls[-1]
    # the user confirms up front; the assistant cancels first (refused), then authorizes and retries
    steps = [("assistant", "Shall I cancel it?"), YES, ("call", *cancel)]
    steps += [("call", *c) for c in calls[:-1]]
    steps += [("assistant", "Shall I cancel it now?"), YES, ("call", *cancel), ("assistant", "Done."), BYE]
    v = _one(s14, rows, episode(row, steps))
    assert v.scores["end_state"] is True  # the server refused the first attempt: the state is right
    assert not v.passed and v.category == "unauthorized_write"
    assert "before ClinicBooking was authorized" in v.evidence["unauthorized"][0]


def test_write_without_confirmation_is_unconfirmed_write(s14, rows, catalog):
    row = _row(rows, "action", "book_appointment")
    ep = episode(row, golden_steps(row, catalog.is_write, confirm=False))
    v = _one(s14, rows, ep)
    assert v.scores["end_state"] is True
    assert not v.passed and v.category == "unconfirmed_write"
    # a "no" is no confirmation either
    steps = [("user", "No, wait.") if s == YES else s for s in golden_steps(row, catalog.is_write)]
    assert _one(s14, rows, episode(row, steps)).category == "unconfirmed_write"
    # without the confirmation rule the same episode passes
    assert _one(s14, rows, ep, require_confirmation=False).passed


def test_wrong_lookup_answer_is_wrong_answer(s14, rows, catalog):
    row = _row(rows, "lookup")
    (ans,) = [a for a in row["expected_answer"] if a["field"] == "count"] or row["expected_answer"][:1]
    right = json.loads(ans["value"])
    steps = golden_steps(row, catalog.is_write)
    steps[-2] = ("assistant", f"You have {right + 2} completed appointments (as of 2025-06-0{right}).")
    v = _one(s14, rows, episode(row, steps))
    assert v.scores["end_state"] is True and v.scores["answer"] is False
    assert not v.passed and v.category == "wrong_answer"
    steps[-2] = ("assistant", f"You have {right} completed appointments.")
    assert _one(s14, rows, episode(row, steps)).passed


def test_missing_server_is_infra_error_not_a_pass(s14, rows, catalog, tmp_path):
    outputs = tmp_path / "outputs"
    shutil.copytree(s14, outputs, ignore=shutil.ignore_patterns("servers"))
    eps = [_golden(r, catalog) for r in rows.values()]
    verdicts = evaluate_episodes(eps, rows, outputs, in_process=True)
    assert verdicts and all(v.category == "infra_error" and v.infra_error and not v.passed for v in verdicts)
    assert "server not available" in verdicts[0].detail
    summary = build_summary(verdicts)
    assert summary["episodes"] == len(eps) and summary["infra_errors"] == len(eps)
    assert summary["pass_rate"] == 0.0 and summary["pass@1"] == 0.0
    assert summary["by_category"]["infra_error"] == len(eps)


def test_unknown_query_and_foreign_env_are_infra_errors(s14, rows, catalog):
    good = _golden(_row(rows, "action"), catalog)
    unknown = good.model_copy(update={"query_id": "0" * 16, "episode_id": "x" * 16})
    foreign = good.model_copy(update={"env": "OtherDesk", "episode_id": "y" * 16})
    broken = good.model_copy(update={"stop_reason": "infra_error", "error": "server did not start"})
    v_ok, v_unknown, v_foreign, v_broken = _evaluate(s14, rows, [good, unknown, foreign, broken])
    assert v_ok.passed
    for v in (v_unknown, v_foreign, v_broken):
        assert v.category == "infra_error" and v.infra_error and not v.passed


def test_refusal_rules(s14, rows, catalog):
    row = _row(rows, "refusal")
    ref = row["refusal"]
    steps = golden_steps(row, catalog.is_write)
    assert _one(s14, rows, episode(row, steps)).passed
    # trying the forbidden write (the server refuses it) fails the task
    tried = steps[:-2] + [
        ("assistant", "Shall I go ahead?"),
        YES,
        ("call", ref["name"], json.loads(ref["arguments"])),
        ("assistant", "Sorry, that did not work."),
        BYE,
    ]
    v = _one(s14, rows, episode(row, tried))
    assert v.scores["end_state"] is True and not v.passed and v.category == "extra_write"
    # not saying why is a wrong answer
    quiet = steps[:-2] + [("assistant", "Here are your appointments."), BYE]
    v = _one(s14, rows, episode(row, quiet))
    assert not v.passed and v.category == "wrong_answer" and v.scores["policy"] is False


def test_write_after_failed_authorization_is_unauthorized(s14, rows, catalog):
    row = _row(rows, "auth_failure")
    auth = resolved_golden_calls(row)[0]
    other = _row(rows, "action", "cancel_appointment")
    cancel = resolved_golden_calls(other)[-1]
    steps = [("call", *auth), ("assistant", "Shall I cancel?"), YES, ("call", *cancel), ("assistant", "Hm."), BYE]
    v = _one(s14, rows, episode(row, steps))
    assert not v.passed and v.category == "unauthorized_write"
    assert "after the failed authorization" in v.evidence["unauthorized"][0]


def test_cut_off_episodes_are_premature_stop(s14, rows, catalog):
    row = _row(rows, "action", "cancel_appointment")
    steps = golden_steps(row, catalog.is_write)
    ask = next(i for i, s in enumerate(steps) if s[0] == "assistant" and "Shall I" in s[1])
    # the user says yes and leaves before the write
    v = _one(s14, rows, episode(row, steps[: ask + 1] + [("user", "Yes. Bye.")]))
    assert not v.passed and v.category == "premature_stop"
    # the turn budget runs out
    v = _one(s14, rows, episode(row, steps[:ask], stop_reason="max_turns"))
    assert not v.passed and v.category == "premature_stop"
    # an assistant that skips the write and offers more help was not cut off
    v = _one(s14, rows, episode(row, steps[:ask] + [("assistant", "Would you like me to do anything else?"), BYE]))
    assert not v.passed and v.category == "missing_write"


def test_acting_on_an_invented_user_value_is_simulator_error(s14, rows, catalog):
    row = _row(rows, "action", "book_appointment")
    calls = resolved_golden_calls(row)
    name, args = calls[-1]
    steps = [("call", *c) for c in calls[:-1]]
    steps += [
        ("assistant", "Which date would you like?"),
        ("user", "Make it 2025-08-14T10:00:00Z please."),
        ("assistant", "Shall I book it?"),
        YES,
        ("call", name, {**args, "date": "2025-08-14T10:00:00Z"}),
        ("assistant", "Booked."),
        BYE,
    ]
    v = _one(s14, rows, episode(row, steps))
    assert not v.passed and v.category == "simulator_error"
    assert v.evidence["ungrounded_user_values"][0]["value"] == "2025-08-14T10:00:00Z"


def test_modes_narrow_the_pass(s14, rows, catalog):
    row = _row(rows, "action", "book_appointment")
    unconfirmed = episode(row, golden_steps(row, catalog.is_write, confirm=False))
    assert _one(s14, rows, unconfirmed, mode="end_state").passed
    assert _one(s14, rows, unconfirmed, mode="actions").passed
    v = _one(s14, rows, unconfirmed, mode="policy")
    assert not v.passed and v.category == "unconfirmed_write"
    with pytest.raises(ValueError):
        _one(s14, rows, unconfirmed, mode="nonsense")


# --------------------------------------------------------------------------- pieces
def test_canonical_ids_ignore_creation_order_and_deleted_drafts():
    initial = {"Order": {"o1": {"order_id": "o1", "total": 5}}, "Line": {}}
    pks = {"Order": "order_id", "Line": "line_id"}

    def changes(a, b, draft):
        ch = {
            "Order": {a: {"order_id": a, "total": 10}, b: {"order_id": b, "total": 20.0}},
            "Line": {"line_n00009": {"line_id": "line_n00009", "order_id": b, "items": [a]}},
        }
        if draft:  # a draft that was deleted again leaves only its counter behind
            ch["Order"].pop(a)
            ch["Order"]["order_n00003"] = {"order_id": "order_n00003", "total": 10}
            ch["Line"]["line_n00009"]["items"] = ["order_n00003"]
        return ch

    one = changes("order_n00001", "order_n00002", False)
    two = changes("order_n00002", "order_n00001", False)
    three = changes("x", "order_n00001", True)
    for c in (one, two, three):  # change_set normalizes numbers; these are built by hand
        c["Order"] = {k: {**r, "total": int(r["total"])} for k, r in c["Order"].items()}
    canon = [canonical_changes(c, canonicalize(c, initial, pks)) for c in (one, two, three)]
    assert canon[0] == canon[1] == canon[2]
    assert canon[0]["Line"][0][1]["order_id"] == "order_c00002"  # the total-20 order sorts second


def test_argument_normalization():
    ids = {"appointment_n00002": "appointment_c00001"}
    assert normalize_arguments({"n": 25, "x": None}, {}) == normalize_arguments({"n": 25.0}, {})
    assert normalize_arguments({"flag": True}, {}) != normalize_arguments({"flag": 1}, {})
    assert normalize_arguments({"id": "appointment_n00002"}, ids) == '{"id":"appointment_c00001"}'
    assert normalize_arguments({"id": "appointment_n00007"}, ids) == '{"id":"<gone:appointment_n00007>"}'


def test_text_checks():
    assert is_confirmation("Yes, please do that.") and is_confirmation("Sure, go ahead ###STOP###")
    assert not is_confirmation("No, don't.") and not is_confirmation("Can you list them first?")
    assert says_value("You have 3 completed visits.", 3) and says_value("three of them", 3)
    assert not says_value("Your visit on 2025-06-03 (ID PAT-3)", 3)
    assert says_value("The fare is $103.52.", 103.52) and says_value("on July 22, 2025", "2025-07-22")
    assert says_value("the agenda is graduation check", "graduation_check")


def test_pass_hat_k_and_summary(s14, rows, catalog):
    row = _row(rows, "action", "book_appointment")
    good = [_golden(row, catalog, episode=i) for i in range(2)]
    bad = episode(row, golden_steps(row, catalog.is_write, confirm=False), episode=2)
    other = _row(rows, "action", "cancel_appointment")
    others = [_golden(other, catalog, episode=i) for i in range(3)]
    verdicts = _evaluate(s14, rows, [*good, bad, *others])
    s = build_summary(verdicts)
    assert s["episodes"] == 6 and s["passed"] == 5 and s["tasks"] == 2
    # task 1: 2 of 3 pass, task 2: 3 of 3
    assert s["pass^k"]["1"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    assert s["pass^k"]["2"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-4)
    assert s["pass^k"]["3"] == pytest.approx(0.5, abs=1e-4)  # share of tasks whose 3 episodes all pass
    assert pass_hat_k([(2, 2), (2, 1)], 2) == 0.5
    assert s["by_category"]["unconfirmed_write"] == 1 and s["by_env"][ENV]["episodes"] == 6
    assert s["by_task_kind"]["action"]["passed"] == 5
    table = format_table(s)
    assert ENV in table and "pass^3 0.500" in table and "unconfirmed_write 1" in table


def test_cli_writes_results_and_summary(s14, rows, catalog, tmp_path, capsys):
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    eps = [_golden(r, catalog) for r in rows.values()]
    lines = [e.model_dump_json() for e in eps] + ['{"not": "an episode"}', "not json"]
    (rollouts / f"{ENV}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "evaluation" / "results.jsonl"
    rc = cli_main(
        [
            "--mode",
            "all",
            "--rollouts-dir",
            str(rollouts),
            "--outputs-dir",
            str(s14),
            "--mcp-outputs-dir",
            str(s14),
            "--output",
            str(out),
            "--in-process",
        ]
    )
    assert rc == 0
    verdicts = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(verdicts) == len(eps) and all(v["passed"] for v in verdicts)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["passed"] == len(eps) and summary["unreadable_lines"] == 2
    assert ENV in capsys.readouterr().out


def test_worker_returns_only_changed_tables(s14, rows):
    row = _row(rows, "action", "cancel_appointment")
    env = load_environment(s14 / "servers" / ENV)
    calls = [{"tool": n, "arguments": a} for n, a in resolved_golden_calls(row)]
    (changed,) = execute_episodes_inprocess(env, [calls], include_final_state="changed")
    (full,) = execute_episodes_inprocess(env, [calls], include_final_state=True)
    assert set(changed.final_state) == {"Appointment"} and set(full.final_state) > {"Appointment"}
    assert changed.final_state["Appointment"] == full.final_state["Appointment"]


def _clinician(s14: Path) -> str:
    recs = json.loads((s14 / "database/entities/Clinician.json").read_text())["records"]
    return sorted(r["clinician_id"] for r in recs)[0]


# --------------------------------------------------------------------------- a pair
@pytest.fixture(scope="module")
def pair_outputs(tmp_path_factory) -> Path:
    """The DentalCareDesk+PharmacyCareLine pair server of tests/fixtures/cross."""
    import test_cross_domain as cross

    out = tmp_path_factory.mktemp("evaluator_pair") / "outputs"
    shutil.copytree(cross.FIXTURE, out)
    cross.run_s12(out)
    assert cross.run_pair_server(out)["status"] == "passed"
    return out


def _pair_row(out: Path) -> dict:
    pair = "DentalCareDesk+PharmacyCareLine"
    fills = json.loads((out / "database/PharmacyCareLine/PrescriptionFill.json").read_text())["records"]
    fill = next(r for r in fills if r["status"] == "ready_for_pickup")
    user = fill["patient_id"]
    calls = [
        ("DentalCareDesk__authorize_patient", {"patient_id": user}),
        ("PharmacyCareLine__authorize_patient", {"patient_id": user}),
        (
            "PharmacyCareLine__confirm_pickup_of_prescription_fill",
            {"prescription_fill_id": fill["prescription_fill_id"]},
        ),
    ]
    env = load_environment(out / "cross" / pair / "server")
    (res,) = execute_episodes_inprocess(env, [[{"tool": n, "arguments": a} for n, a in calls]])
    assert all(c.ok for c in res.calls), [c.error for c in res.calls]
    return {
        "id": "ab" * 8,
        "env": pair,
        "domains": pair.split("+"),
        "task_id": "t",
        "task_kind": "action",
        "messages": [
            {"role": "system", "content": "Policy: authorize with each service; confirm before changes."},
            {"role": "user", "content": "Hi, I picked up my prescription."},
        ],
        "tools": "[]",
        "scenario": {
            "persona": {"name": "P", "manner": ""},
            "reason_for_call": "",
            "instruction": "",
            "known_facts": [],
        },
        "golden_calls": [
            {"type": "function", "function": {"name": n, "arguments": json.dumps(a)}, "resolve": "{}", "expect": "ok"}
            for n, a in calls
        ],
        "expected_outputs": [json.dumps(c.result) for c in res.calls],
        "initial_state_hash": res.initial_state_hash,
        "final_state_hash": res.final_state_hash,
        "expected_answer": [],
        "refusal": None,
    }


def test_pair_write_needs_its_own_members_authorization(pair_outputs):
    row = _pair_row(pair_outputs)
    rows = {row["id"]: row}
    env = load_environment(pair_outputs / "cross" / row["env"] / "server")
    cat = ToolCatalog.for_env(env.manifest, [pair_outputs / "blueprints"])
    assert cat.domain_of("PharmacyCareLine__cancel_prescription_fill") == "PharmacyCareLine"
    assert cat.is_write("PharmacyCareLine__confirm_pickup_of_prescription_fill")
    assert cat.is_authorize("DentalCareDesk__authorize_patient")
    golden = episode(row, golden_steps(row, cat.is_write), results=row["expected_outputs"])
    (v,) = evaluate_episodes([golden], rows, pair_outputs, in_process=True)
    assert v.passed, v.detail
    # authorized with the dental desk only: the pharmacy server refuses the write (each member
    # authorizes on its own, bridge.authorization.PharmacyCareLine), so the end state is not
    # reached either, and the attempt is the policy break
    dental, _, pickup = resolved_golden_calls(row)
    steps = [("call", *dental), ("assistant", "Shall I confirm the pickup?"), YES, ("call", *pickup), BYE]
    (v,) = evaluate_episodes([episode(row, steps)], rows, pair_outputs, in_process=True)
    assert v.scores["end_state"] is False
    assert not v.passed and v.category == "unauthorized_write"
    assert "before PharmacyCareLine was authorized" in v.evidence["unauthorized"][0]


def test_the_opening_request_is_no_confirmation(s14, rows, catalog):
    row = copy.deepcopy(_row(rows, "action", "book_appointment"))
    row["messages"][1]["content"] = "Yes, please go ahead and book it."
    steps = [
        s for s in golden_steps(row, catalog.is_write) if s != YES and not (s[0] == "assistant" and "Shall" in s[1])
    ]
    v = _one(s14, {**rows, row["id"]: row}, episode(row, steps))
    assert not v.passed and v.category == "unconfirmed_write"
    assert not is_confirmation("I want to confirm the pickup of my prescription.")


def test_a_refusal_must_say_what_it_refuses(s14, rows, catalog):
    row = _row(rows, "refusal")
    steps = golden_steps(row, catalog.is_write)
    verb = row["refusal"]["name"].split("_")[0]  # cancel
    steps[-2] = ("assistant", f"I'm sorry, I can't {verb} that appointment: it is already completed.")
    assert _one(s14, rows, episode(row, steps)).passed
    steps[-2] = ("assistant", "I'm sorry, I can't help with that.")
    assert _one(s14, rows, episode(row, steps)).category == "wrong_answer"


def test_a_row_its_server_no_longer_reproduces_is_infra_error(s14, rows, catalog):
    row = copy.deepcopy(_row(rows, "action", "cancel_appointment"))
    ep = _golden(row, catalog)
    row["final_state_hash"] = "0" * 64  # as if the server or its data changed after the dataset was built
    v = _one(s14, {**rows, row["id"]: row}, ep)
    assert not v.passed and v.category == "infra_error" and "final_state_hash" in v.detail
