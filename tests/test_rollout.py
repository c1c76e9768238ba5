"""rollout/: the episode loop, both transports, resumable output, the offline simulators and
the model-backed path (with a stub client).

Most tests use a tiny outputs directory (tests/rollout_fixture.py: the ClinicDesk fixture
server and five hand-written rows). The ``slow`` ones play the default offline run's rows
(the ``outputs_dir`` fixture: AGENTSKILLER_OUTPUTS or the shared default run)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rollout_fixture import make_outputs

from agentskiller.models.episodes import Episode
from rollout import RolloutSettings, load_rows, play_episode, read_episodes, run_rollouts, solved
from rollout.check import replay_final_hashes
from rollout.llm_agents import LLMUser, user_system_prompt
from rollout.loop import episode_id
from rollout.nlu import stop_reason
from rollout.offline_assistant import MISTAKE_KINDS, OfflineAssistant
from rollout.offline_user import OfflineUser
from rollout.transport import FastTransport, McpTransport, TransportError, server_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    return make_outputs(tmp_path_factory.mktemp("rollout"))


@pytest.fixture(scope="module")
def fast(clinic):
    out, _ = clinic
    t = FastTransport(out / "servers" / "ClinicDesk")
    yield t
    t.close()


# ----------------------------------------------------------------------------- loop
def test_offline_episodes_solve_every_fixture_task_and_follow_the_policy(clinic, fast):
    _, rows = clinic
    for row in rows:
        ep = play_episode(row, 0, fast, RolloutSettings())
        assert solved(row, ep) == (True, ""), (row["task_kind"], ep.messages)
        assert ep.stop_reason == "user_stop" and ep.error is None
        assert ep.messages[:2] == row["messages"]  # system policy + the authored first message
        assert ep.models == {"user": "offline-user-v1", "assistant": "offline-assistant-v1"}
        assert ep.episode_id == episode_id(row["id"], 0) and ep.transport == "fast"
        calls = [(i, c) for i, m in enumerate(ep.messages) for c in m.get("tool_calls") or []]
        assert ep.tool_calls == len(calls) and ep.turns == sum(m["role"] == "user" for m in ep.messages)
        for i, c in calls:
            assert isinstance(c["function"]["arguments"], str)
            assert ep.messages[i]["role"] == "assistant" and len(ep.messages[i]["tool_calls"]) == 1
            result = ep.messages[i + 1]
            assert result["role"] == "tool" and result["tool_call_id"] == c["id"]
            json.loads(result["content"])  # the result or {"error": ...} as JSON text
        names = [c["function"]["name"] for _, c in calls]
        assert names[0] == "authorize_patient"  # authorize first
        for i, c in calls:  # a write only after a proposal and a "yes"
            if c["function"]["name"] in ("cancel_appointment", "book_appointment"):
                before = [m for m in ep.messages[:i] if m["role"] in ("user", "assistant") and m.get("content")]
                assert "Shall I go ahead" in before[-2]["content"] and before[-1]["content"].startswith("Yes")
        if row["task_kind"] == "auth_failure":
            assert names == ["authorize_patient"]  # nothing after a failed authorization
        if row["task_kind"] == "refusal":
            assert "cancel_appointment" in names  # tried, refused by the server, and said why
            assert "only scheduled appointments can be cancelled" in ep.messages[-2]["content"]


POLICY_SECTIONS = """
<!-- TOOL: cancel_appointment -->
### cancel_appointment

**Preconditions:**
- `Appointment.status` is `scheduled`. <!-- RULE: cancel_appointment.precondition -->

<!-- TOOL_END: cancel_appointment -->

<!-- TOOL: book_appointment -->
### book_appointment

**Input validation:**
- `date` (date, required): a date written YYYY-MM-DD; it must lie after the current time (2025-06-02T09:00:00Z). <!-- RULE: book_appointment.date.future -->
- `fee` (number, optional): between 0 and 5000. <!-- RULE: book_appointment.fee.range -->

<!-- TOOL_END: book_appointment -->
"""


def test_a_write_the_policy_forbids_is_refused_without_trying_it(clinic, fast):
    """With the policy's tool sections the assistant checks a write before asking for the
    go-ahead: the record's status (looked up first when it was not shown yet), a date that
    must lie in the future. It refuses and says why, and the server is never asked."""
    _, rows = clinic
    refusal = copy.deepcopy(rows[3])  # cancel APT-0002, which is completed
    refusal["messages"][0]["content"] += POLICY_SECTIONS
    ep = play_episode(refusal, 0, fast, RolloutSettings())
    names = [c["function"]["name"] for m in ep.messages for c in m.get("tool_calls") or []]
    assert "cancel_appointment" not in names and solved(refusal, ep)[0]
    final = [m["content"] for m in ep.messages if m["role"] == "assistant" and m.get("content")][-1]
    assert "can't cancel" in final and "status is completed" in final
    # the status was unknown: the assistant looks the record up before refusing
    direct = copy.deepcopy(refusal)
    direct["scenario"]["instruction"] = "Hi, I'm Ada Moreau (patient ID PAT-001). Cancel my appointment APT-0002."
    ep = play_episode(direct, 0, fast, RolloutSettings())
    names = [c["function"]["name"] for m in ep.messages for c in m.get("tool_calls") or []]
    assert names == ["authorize_patient", "get_appointment"] and "status is completed" in ep.messages[-2]["content"]
    # a date in the past
    past = copy.deepcopy(rows[1])
    past["messages"][0]["content"] += POLICY_SECTIONS
    past["scenario"]["instruction"] = past["scenario"]["instruction"].replace("July 1, 2025", "May 1, 2025")
    ep = play_episode(past, 0, fast, RolloutSettings())
    names = [c["function"]["name"] for m in ep.messages for c in m.get("tool_calls") or []]
    assert "book_appointment" not in names and "not after the current time" in ep.messages[-2]["content"]
    # allowed writes still go through
    ok = copy.deepcopy(rows[0])
    ok["messages"][0]["content"] += POLICY_SECTIONS
    assert solved(ok, play_episode(ok, 0, fast, RolloutSettings()))[0]


def test_policy_rules_are_read_from_the_tool_sections():
    from rollout.policy import in_window, parse_policy

    text = POLICY_SECTIONS + (
        "<!-- TOOL: check_in_for_appointment -->\n- Check-in opens 24 hours before `Appointment.scheduled_at`: that "
        "time must lie between the current time (2025-06-02T09:00:00Z) and 24 hours after it. "
        "<!-- RULE: check_in_for_appointment.window -->\n<!-- TOOL_END: check_in_for_appointment -->\n"
    )
    rules = parse_policy(text)
    assert rules["cancel_appointment"].preconditions == [("appointment_id", "status", ["scheduled"])]
    assert rules["book_appointment"].future == {"date": "2025-06-02T09:00:00Z"}
    assert rules["book_appointment"].ranges == {"fee": (0.0, 5000.0)}
    (w,) = rules["check_in_for_appointment"].windows
    assert w == ("appointment_id", "scheduled_at", 24.0, "2025-06-02T09:00:00Z", False)
    assert in_window("2025-06-03T08:00:00Z", w[3], 24, False) and not in_window("2025-06-03T10:00:00Z", w[3], 24, False)
    assert not in_window("2025-06-02T08:00:00Z", w[3], 24, False)
    assert in_window("2025-06-03", w[3], 24, True) and not in_window("2025-06-04", w[3], 24, True)


def test_the_assistant_never_reads_the_golden_data(clinic, fast):
    """Changing the golden calls, outputs and hashes of a row changes nothing it plays."""
    _, rows = clinic
    for row in rows:
        forged = copy.deepcopy(row)
        forged["golden_calls"] = [
            {
                "type": "function",
                "function": {"name": "get_dentist", "arguments": '{"dentist_id": "DEN-02"}'},
                "resolve": "{}",
            }
        ]
        forged["expected_outputs"], forged["grounding"], forged["trajectory"] = ["{}"], [], ["get_dentist"]
        forged["final_state_hash"] = forged["initial_state_hash"] = "0" * 64
        forged["expected_answer"], forged["refusal"] = [], None
        a = play_episode(row, 0, fast, RolloutSettings())
        b = play_episode(forged, 0, fast, RolloutSettings())
        assert a.messages == b.messages and a.final_state_hash == b.final_state_hash


def test_fast_and_mcp_transports_give_the_same_episode(clinic, fast):
    out, rows = clinic
    row = rows[0]  # authorize, search, cancel (a write)
    with McpTransport(out / "servers" / "ClinicDesk") as mcp:
        a = play_episode(row, 0, fast, RolloutSettings())
        b = play_episode(row, 0, mcp, RolloutSettings(transport="mcp"))
        assert (
            sorted(mcp.tools) == sorted(fast.tools) == sorted(t["function"]["name"] for t in json.loads(row["tools"]))
        )
        assert b.transport == "mcp"
        assert a.messages == b.messages  # same tool results, so the same conversation
        assert a.final_state_hash == b.final_state_hash == row["final_state_hash"]
        # per call too: the state hash after each call
        mcp.reset()
        fast.reset()
        for name, args in [
            ("authorize_patient", {"patient_id": "PAT-001"}),
            ("cancel_appointment", {"appointment_id": "APT-0002"}),
        ]:
            x, y = fast.call(name, args), mcp.call(name, args)
            assert (x.ok, x.result, x.error, x.state_hash_after) == (y.ok, y.result, y.error, y.state_hash_after)


def test_every_episode_starts_from_a_fresh_state(clinic, fast):
    _, rows = clinic
    row = rows[0]
    first = play_episode(row, 0, fast, RolloutSettings())
    again = play_episode(row, 0, fast, RolloutSettings())  # same worker, after a write
    assert first.messages == again.messages and again.final_state_hash == row["final_state_hash"]


def test_fast_transport_runs_the_tool_code_sandboxed_and_cleans_up(clinic):
    out, _ = clinic
    t = FastTransport(out / "servers" / "ClinicDesk")
    pid = t._proc.pid
    if os.geteuid() == 0:
        assert t.isolation["mounts"] and t.isolation["network"] and t.isolation["uid"] is not None
    t.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_broken_environment_is_an_infra_error_episode(clinic, tmp_path):
    out, rows = clinic
    with pytest.raises(TransportError):
        FastTransport(tmp_path / "no-such-server")
    broken = tmp_path / "outputs"
    (broken / "dataset").mkdir(parents=True)
    summary = run_rollouts(rows[:1], broken, tmp_path / "r.jsonl", RolloutSettings())
    (ep,) = read_episodes(tmp_path / "r.jsonl")
    assert summary["infra_errors"] == 1 and ep.stop_reason == "infra_error" and ep.final_state_hash is None
    assert "cannot load" in ep.error


# ----------------------------------------------------------------------------- output
def test_run_rollouts_is_deterministic_sorted_and_resumable(clinic, tmp_path):
    out, rows = clinic
    settings = RolloutSettings(episodes_per_task=2, seed=3)
    a = tmp_path / "a.jsonl"
    s = run_rollouts(rows, out, a, settings)
    assert s["episodes"] == s["played"] == 2 * len(rows) and s["resumed"] == 0
    text = a.read_text()
    eps = read_episodes(a)
    assert [(e.env, e.query_id, e.episode) for e in eps] == sorted((e.env, e.query_id, e.episode) for e in eps)
    assert not a.with_name("a.jsonl.partial").exists()

    # the same seed gives the same bytes, also with two workers
    b = tmp_path / "b.jsonl"
    run_rollouts(rows, out, b, settings.model_copy(update={"workers": 2}))
    assert b.read_text() == text

    # a kill: two finished episodes and a torn line in the partial file
    c = tmp_path / "c.jsonl"
    lines = text.splitlines()
    c.with_name("c.jsonl.partial").write_text(lines[3] + "\n" + lines[0] + "\n" + lines[1][:50])
    c.with_name("c.jsonl.partial.meta").write_text(settings.fingerprint(s["models"]) + "\n")
    s2 = run_rollouts(rows, out, c, settings)
    assert s2["resumed"] == 2 and s2["played"] == len(lines) - 2
    assert c.read_text() == text

    # a partial file from other settings is not mixed in
    d = tmp_path / "d.jsonl"
    d.with_name("d.jsonl.partial").write_text(lines[0] + "\n")
    d.with_name("d.jsonl.partial.meta").write_text("other\n")
    assert run_rollouts(rows, out, d, settings)["resumed"] == 0


def test_cli_writes_the_episodes(clinic, tmp_path):
    out, rows = clinic
    res = subprocess.run(
        [sys.executable, "-m", "rollout", "--outputs-dir", str(out), "--env", "ClinicDesk", "--out", str(tmp_path / "r.jsonl"),
         "--episodes", "1", "--max-turns", "12", "--seed", "1"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["episodes"] == len(rows) and summary["stop_reasons"] == {"user_stop": len(rows)}
    assert len(read_episodes(tmp_path / "r.jsonl")) == len(rows)
    bad = subprocess.run(
        [sys.executable, "-m", "rollout", "--outputs-dir", str(out), "--env", "Nope"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "no dataset rows for env Nope" in bad.stderr


def test_max_turns_bounds_an_episode(clinic, fast):
    _, rows = clinic
    ep = play_episode(rows[0], 0, fast, RolloutSettings(max_turns=2))
    assert ep.stop_reason == "max_turns" and ep.turns == 2


# ----------------------------------------------------------------------------- mistakes
def test_injected_mistakes_are_recorded_where_they_happen(clinic, fast):
    _, rows = clinic
    row = rows[0]
    for kind in MISTAKE_KINDS:
        ep = play_episode(row, 0, fast, RolloutSettings(), assistant=OfflineAssistant(mistake=kind))
        assert [m.kind for m in ep.mistakes] == [kind], kind
        m = ep.messages[ep.mistakes[0].message]
        assert m["role"] == "assistant"
        ok, _ = solved(row, ep)
        if kind in ("wrong_argument", "skipped_step", "premature_end"):
            assert not ok, kind
        if kind == "unconfirmed_write":
            assert m["tool_calls"][0]["function"]["name"] == "cancel_appointment"
            assert "Shall I go ahead" not in (ep.messages[ep.mistakes[0].message - 2].get("content") or "")
        if kind == "extra_call":
            assert m["tool_calls"][0]["function"]["name"] == "cancel_appointment"
            assert [c["function"]["name"] for x in ep.messages for c in x.get("tool_calls") or []].count(
                "cancel_appointment"
            ) == 2


def test_the_mistake_rate_is_seeded(clinic, tmp_path):
    out, rows = clinic
    settings = RolloutSettings(episodes_per_task=4, mistake_rate=0.5, seed=11)
    run_rollouts(rows, out, tmp_path / "a.jsonl", settings)
    run_rollouts(rows, out, tmp_path / "b.jsonl", settings)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    eps = read_episodes(tmp_path / "a.jsonl")
    assert 0 < sum(bool(e.mistakes) for e in eps) < len(eps)
    none = run_rollouts(rows, out, tmp_path / "c.jsonl", settings.model_copy(update={"mistake_rate": 0.0}))
    assert none["mistakes"] == 0


# ----------------------------------------------------------------------------- the user
def test_offline_user_confirms_only_what_it_asked_for(clinic):
    _, rows = clinic
    row = rows[0]
    user = OfflineUser(row["scenario"], row["messages"][1]["content"], row["messages"][0]["content"])
    said = [{"role": "user", "content": row["messages"][1]["content"]}, {"role": "user", "content": user.steps[0]},
            {"role": "user", "content": user.steps[1]}]  # fmt: skip

    def ask(text: str) -> str:
        return user.reply([*said, {"role": "assistant", "content": text}])

    good = 'I will cancel the appointment with appointment ID: APT-0004 (`cancel_appointment` {"appointment_id": "APT-0004"}). Shall I go ahead (yes/no)?'
    assert ask(good).startswith("Yes")
    wrong_verb = 'I will book an appointment: `book_appointment` {"dentist_id": "DEN-01", "date": "2025-06-20"}. Shall I go ahead (yes/no)?'
    assert ask(wrong_verb).startswith("No")
    wrong_date = "I will cancel your appointment of 2025-06-21. Shall I go ahead (yes/no)?"
    assert ask(wrong_date).startswith("No")
    assert "PAT-001" in ask("Could you please tell me your patient ID?")
    assert stop_reason(ask("I'm sorry, I can't do that: the appointment is completed."))[0] == "user_stop"
    assert stop_reason(ask("Done. Is there anything else I can help you with?"))[0] == "user_stop"  # all told
    assert stop_reason(ask("Let me transfer you to a human agent."))[0] == "transfer"


FRAMINGS = [
    "I need to cancel an appointment. Hi, this is Ada Moreau, my patient ID is PAT-001. Show me my scheduled "
    "appointments. Then cancel my appointment on June 20, 2025. Thanks so much, I really appreciate it!",
    "Something came up at work. Ada Moreau here - my patient ID is PAT-001. Please show me my scheduled "
    "appointments, and then cancel my appointment on June 20, 2025.",
    "Hey there, Ada Moreau here - my patient ID is PAT-001 - could you show me my scheduled appointments and then "
    "cancel my appointment on June 20, 2025?",
    "Hi, I'm Ada Moreau (patient ID PAT-001). Could you show me my scheduled appointments? After you've done that, "
    "could you cancel my appointment on Friday, June 20, 2025?",
    "Hi there, it's Ada Moreau calling; my patient ID is PAT-001. Hope your day is going well! First of all, show "
    "me my scheduled appointments. With that done, cancel my appointment on 20 June 2025. Could you confirm once "
    "it's all done?",
]


@pytest.mark.parametrize("instruction", FRAMINGS)
def test_other_framings_of_the_same_task(clinic, fast, instruction):
    """Goal or reason first, all requests in one sentence, questions, asides: the user
    still tells one request at a time and the task is still solved."""
    _, rows = clinic
    row = copy.deepcopy(rows[0])
    row["scenario"]["instruction"] = instruction
    user = OfflineUser(row["scenario"], row["messages"][1]["content"])
    assert len(user.steps) == 2, user.steps
    ep = play_episode(row, 0, fast, RolloutSettings())
    assert solved(row, ep) == (True, ""), ep.messages


#: the s17 writer's newer phrasings (agentskiller/llm/offline/writers: framing, manner, wording,
#: s17_queries): phrasal lead verbs, a reason after the ID, an anxious aside, a sentence that
#: says which record is meant, a value question after the read; (row, instruction, steps)
PHRASINGS = [
    (
        0,
        "Hiya, I'm Ada Moreau; you'll find me under patient ID PAT-001. I want to make sure this is done "
        "correctly. Let me see my scheduled appointments. To finish, remove my appointment. The appointment I "
        "mean is the one on Friday, June 20, 2025. Please let me know that it went through.",
        2,
    ),
    (
        0,
        "Ada Moreau here - my patient ID is PAT-001. Okay, so I have made other arrangements and want to cancel "
        "my appointment. Pull up my scheduled appointments. Then cancel my appointment with the date June 20, 2025.",
        2,
    ),
    (
        1,
        "Hello there, my name is Ada Moreau and my patient ID is PAT-001. Please have a look at dentist DEN-01. "
        "Once you have that, set up an appointment with that dentist for July 1, 2025.",
        2,
    ),
    (
        1,
        "Hi, I'm Ada Moreau (patient ID PAT-001), and I'd like you to bring up dentist DEN-01; once that's done, "
        "arrange an appointment with that dentist on 1 July 2025. Bear with me, I always mix these things up.",
        2,
    ),
    (
        2,
        "Hi, I'm Ada Moreau (patient ID PAT-001). Could you take a look at my appointment APT-0002? "
        "What I need to find out is the fee.",
        2,
    ),  # fmt: skip
    (
        2,
        "Hey, it's Ada Moreau, patient ID PAT-001. Read me back the details of my appointment APT-0002. "
        "I'd like to know the fee and the status.",
        2,
    ),  # fmt: skip
]


@pytest.mark.parametrize(("row_i", "instruction", "n_steps"), PHRASINGS)
def test_newer_phrasings_of_the_writer(clinic, fast, row_i, instruction, n_steps):
    _, rows = clinic
    row = copy.deepcopy(rows[row_i])
    row["scenario"]["instruction"] = instruction
    user = OfflineUser(row["scenario"], row["messages"][1]["content"])
    assert len(user.steps) == n_steps, user.steps
    ep = play_episode(row, 0, fast, RolloutSettings())
    assert solved(row, ep) == (True, ""), ep.messages
    assert ep.stop_reason == "user_stop" and ep.turns < 12, ep.messages
    if row["task_kind"] == "lookup":  # the value asked for is told in words, after the read
        last = [m["content"] for m in ep.messages if m["role"] == "assistant" and m.get("content")][-1]
        assert re.search(r"\bThe fee is 300(?:\.0)?\b", last), last


def test_the_user_tells_which_record_it_means_when_asked():
    user = OfflineUser(
        {
            "instruction": "Hi, I'm Ada Moreau (patient ID PAT-001). Pull up my appointment about a cleaning. Then "
            "cancel it. The appointment I mean is the one on June 20, 2025.",
            "known_facts": [{"fact": "your patient ID", "value": "PAT-001"}],
        },
        "Hi, I need to cancel an appointment.",
    )
    assert user.notes == ["The appointment I mean is the one on June 20, 2025."]
    said = [{"role": "user", "content": user.steps[0]}]
    for ask in (
        "I found more than one that fits (APT-0001, APT-0004). Which one do you mean?",
        "I couldn't find a appointment matching that. Could you please tell me its appointment ID?",
    ):
        assert user.reply([*said, {"role": "assistant", "content": ask}]) == user.notes[0]
    # a question about another record is not answered with an unrelated ID
    reply = user.reply([*said, {"role": "assistant", "content": "Could you please tell me the dentist ID?"}])
    assert "PAT-001" not in reply


def test_a_value_added_after_the_request_goes_into_its_call(clinic, fast):
    """s17's extra sentence ("Please make sure the fee is $95.50.") names a value the request
    left out; the user says it with that request and the assistant puts it in the call."""
    _, rows = clinic
    row = copy.deepcopy(rows[1])
    row["scenario"]["instruction"] = (
        "Hello, this is Ada Moreau, my patient ID is PAT-001. Please look up dentist DEN-01. After that, book an "
        "appointment with that dentist on July 1, 2025. Please make sure the fee is $95.50."
    )
    user = OfflineUser(row["scenario"], row["messages"][1]["content"])
    assert len(user.steps) == 2 and user.steps[1].endswith("Please make sure the fee is $95.50."), user.steps
    ep = play_episode(row, 0, fast, RolloutSettings())
    booked = [json.loads(c["function"]["arguments"]) for m in ep.messages for c in m.get("tool_calls") or []]
    assert {"dentist_id": "DEN-01", "date": "2025-07-01", "fee": 95.5} in booked, ep.messages


def test_numbers_go_to_the_parameter_their_noun_names():
    from rollout.offline_assistant import Conversation, Planner

    def prop(desc: str, **kw) -> dict:
        return {"type": "integer", "description": desc, **kw}

    tools = [
        {"type": "function", "function": {"name": "make_reservation", "description": "Book a stay. The new hotel "
         "reservation starts as reserved.", "parameters": {"type": "object", "required": ["guests", "nights"],
         "properties": {"guests": prop("Number of guests"), "nights": prop("Number of nights")}}}},
        {"type": "function", "function": {"name": "submit_fill", "description": "Submit a fill. The new "
         "prescription fill starts as submitted.", "parameters": {"type": "object", "required":
         ["quantity", "refills_remaining"], "properties": {"quantity": prop("Number of units dispensed"),
         "refills_remaining": prop("Refills left on the prescription")}}}},
    ]  # fmt: skip
    planner = Planner(Conversation([{"role": "system", "content": ""}], tools))
    by = {t.name: t for t in planner.c.tools}
    got = planner.resolve(by["make_reservation"], "book a reservation for 20 nights for a party of 1", "", 0)
    assert got.args == {"guests": 1, "nights": 20} and not got.missing
    got = planner.resolve(by["submit_fill"], "submit a fill for 37 units with 6 refills", "", 0)
    assert got.args == {"quantity": 37, "refills_remaining": 6}


def test_stop_tokens():
    assert stop_reason("Thanks! ###STOP###") == ("user_stop", "Thanks!")
    assert stop_reason("###TRANSFER###") == ("transfer", "")
    assert stop_reason("This cannot be done here. ###OUT-OF-SCOPE###")[0] == "out_of_scope"
    assert stop_reason("Go on.") == (None, "Go on.")


# ----------------------------------------------------------------------------- LLM path
class StubLLM:
    """Plays both sides from a script; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def chat(self, task, messages, tools=None, role="assistant", tool_choice="auto", context=None):
        from types import SimpleNamespace

        self.calls.append({"task": task, "messages": messages, "tools": tools, "role": role, "context": context})
        usage = {"prompt_tokens": 10, "completion_tokens": 2}
        if role == "user":
            n = sum(1 for c in self.calls if c["role"] == "user")
            text = "My patient ID is PAT-001." if n == 1 else "Thanks, that is all. ###STOP###"
            return SimpleNamespace(content=text, tool_calls=[], finish_reason="stop", usage=usage)
        if messages[-1]["role"] == "user" and "PAT-001" in messages[-1]["content"]:
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": "authorize_patient", "arguments": '{"patient_id": "PAT-001"}'},
            }
            return SimpleNamespace(content=None, tool_calls=[call], finish_reason="tool_calls", usage=usage)
        if messages[-1]["role"] == "tool":
            return SimpleNamespace(content="You are verified.", tool_calls=[], finish_reason="stop", usage=usage)
        return SimpleNamespace(content="What is your patient ID?", tool_calls=[], finish_reason="stop", usage=usage)


def test_model_backed_user_and_assistant_through_chat(clinic, fast):
    _, rows = clinic
    row = rows[2]
    llm = StubLLM()
    ep = play_episode(row, 1, fast, RolloutSettings(), llm=llm)
    assert ep.stop_reason == "user_stop" and ep.tool_calls == 1
    assert [m["role"] for m in ep.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert ep.messages[-1]["content"] == "Thanks, that is all."
    assert ep.usage["assistant"].prompt_tokens == 30 and ep.usage["user"].completion_tokens == 4
    asst = [c for c in llm.calls if c["role"] == "assistant"]
    assert asst[0]["messages"][0] == row["messages"][0]  # the policy is the system message
    assert asst[0]["tools"] == json.loads(row["tools"]) and asst[0]["task"] == "rollout.assistant"
    assert asst[0]["context"] == {"query_id": row["id"], "episode": 1}
    user_view = [c for c in llm.calls if c["role"] == "user"][0]
    assert user_view["tools"] is None
    system = user_view["messages"][0]["content"]
    assert row["scenario"]["instruction"] in system and "###STOP###" in system and "PAT-001" in system
    # roles swapped, tool traffic hidden: the user's own first message is its "assistant" turn
    assert [m["role"] for m in user_view["messages"][1:]] == ["assistant", "user"]


def test_user_prompt_is_data_and_the_view_hides_tools(clinic):
    _, rows = clinic
    prompt = user_system_prompt(rows[0]["scenario"])
    for token in ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###", "Ada Moreau"):
        assert token in prompt
    user = LLMUser(StubLLM(), rows[0]["scenario"])
    view = user.view(
        [
            {"role": "system", "content": "policy"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]},
            {"role": "tool", "tool_call_id": "x", "content": "{}"},
            {"role": "assistant", "content": "done"},
        ]
    )
    assert [(m["role"], m["content"]) for m in view[1:]] == [("assistant", "hi"), ("user", "done")]


def test_an_empty_model_turn_ends_the_episode_as_assistant_error(clinic, fast):
    from types import SimpleNamespace

    class Empty(StubLLM):
        def chat(self, task, messages, tools=None, role="assistant", tool_choice="auto", context=None):
            if role == "assistant":
                return SimpleNamespace(content="", tool_calls=[], finish_reason="length", usage=None)
            return super().chat(task, messages, tools, role, tool_choice, context)

    ep = play_episode(clinic[1][0], 0, fast, RolloutSettings(), llm=Empty())
    assert ep.stop_reason == "assistant_error" and "empty turn" in ep.error


# ----------------------------------------------------------------------------- default run
@pytest.mark.slow
def test_offline_simulators_solve_the_default_run_rows(outputs_dir):
    rows = load_rows(outputs_dir)
    transports: dict = {}
    failures, episodes = [], []
    try:
        for row in rows:
            t = transports.get(row["env"]) or transports.setdefault(
                row["env"], FastTransport(server_dir(outputs_dir, row["env"]))
            )
            ep = play_episode(row, 0, t, RolloutSettings())
            episodes.append(ep)
            ok, cause = solved(row, ep)
            if not ok:
                failures.append((row["id"], row["task_kind"], cause))
    finally:
        for t in transports.values():
            t.close()
    assert len(failures) <= 0.05 * len(rows), failures
    # the live hashes are what an independent, sandboxed replay of the episodes' calls gives
    replayed = replay_final_hashes(episodes, outputs_dir)
    assert all(replayed[e.episode_id] == e.final_state_hash for e in episodes)


@pytest.mark.slow
def test_the_evaluator_passes_the_offline_episodes_and_names_the_injected_mistakes(outputs_dir, tmp_path):
    """evaluator/ (written independently) judges the offline episodes of the default run."""
    evaluator = pytest.importorskip("evaluator")
    rows = load_rows(outputs_dir)
    clean = tmp_path / "clean.jsonl"
    run_rollouts(rows, outputs_dir, clean, RolloutSettings(workers=2))
    eps = read_episodes(clean)
    verdicts = evaluator.evaluate_episodes(eps, rows, outputs_dir, outputs_dir=outputs_dir)
    failed = [(v.query_id, v.category, v.detail) for v in verdicts if not v.passed]
    assert len(failed) <= 0.05 * len(verdicts), failed[:10]
    # the verdicts say what the injected mistakes imply (rollout.mistakes: the ground truth;
    # a mistake without observable effect, found by replay, must pass)
    from rollout.mistakes import agreement

    for rate, seed in ((0.3, 7), (1.0, 5)):
        noisy = tmp_path / f"noisy-{rate}-{seed}.jsonl"
        run_rollouts(rows, outputs_dir, noisy, RolloutSettings(mistake_rate=rate, seed=seed, workers=2))
        eps = read_episodes(noisy)
        verdicts = evaluator.evaluate_episodes(eps, rows, outputs_dir, outputs_dir=outputs_dir)
        report = agreement(eps, verdicts, rows, outputs_dir)
        assert report["with_mistakes"] > 0 and report["observable"] > 0
        assert report["agreement"] >= 0.99, report["disagreements"][:10]


@pytest.mark.slow
def test_default_run_episode_is_the_same_over_mcp(outputs_dir):
    rows = load_rows(outputs_dir)
    picks = [
        next(r for r in rows if r["cross_domain"] and r["task_kind"] == "action"),
        next(r for r in rows if not r["cross_domain"]),
    ]
    for row in picks:
        with (
            FastTransport(server_dir(outputs_dir, row["env"])) as f,
            McpTransport(server_dir(outputs_dir, row["env"])) as m,
        ):
            a = play_episode(row, 0, f, RolloutSettings())
            b = play_episode(row, 0, m, RolloutSettings(transport="mcp"))
        assert a.messages == b.messages and a.final_state_hash == b.final_state_hash
        assert Episode.model_validate_json(b.model_dump_json()) == b
