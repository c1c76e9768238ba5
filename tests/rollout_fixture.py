"""A tiny outputs directory for rollout tests: the ClinicDesk fixture server plus a few
hand-written dataset rows (action, create, lookup, refusal, auth failure), their state
hashes computed by replaying the golden calls (trusted fixture code, in process)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

FIX = Path(__file__).parent / "fixtures" / "runtime"

POLICY = """# ClinicDesk service policy

You are the assistant of ClinicDesk. You talk to one patient per conversation and act only through the tools.

- Before any other action, identify the patient with `authorize_patient` using their `patient_id` (IDs look like `PAT-001`). If it fails, say so and do nothing else.
- The current time is 2025-06-02T09:00:00Z.
- Before any change to the data, list the action and every value it will use, and go ahead only after the user explicitly confirms (yes).
- Make one tool call at a time and report its outcome before the next.
"""


def _facts(pid: str, **more: str) -> list[dict]:
    facts = [{"fact": "your full name", "value": "Ada Moreau"}, {"fact": "your patient id", "value": pid}]
    facts += [{"fact": k.replace("_", " "), "value": v} for k, v in more.items()]
    return facts


def _call(name: str, **args) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)},
        "resolve": "{}",
        "expect": "ok",
    }


ROWS = [
    {
        "kind": "action",
        "first": "Hi, I'd like to cancel an appointment.",
        "instruction": "Hi, I'm Ada Moreau (patient ID PAT-001). Show me my scheduled appointments. "
        "Then cancel my appointment on June 20, 2025.",
        "facts": _facts("PAT-001"),
        "calls": [
            _call("authorize_patient", patient_id="PAT-001"),
            _call("search_appointments", status="scheduled"),
            _call("cancel_appointment", appointment_id="APT-0004"),
        ],
    },
    {
        "kind": "action",
        "first": "Hello, can I book a visit?",
        "instruction": "Hello, this is Ada Moreau, my patient ID is PAT-001. Please look up dentist DEN-01. "
        "After that, book an appointment with that dentist on July 1, 2025.",
        "facts": _facts("PAT-001", dentist_id="DEN-01"),
        "calls": [
            _call("authorize_patient", patient_id="PAT-001"),
            _call("get_dentist", dentist_id="DEN-01"),
            _call("book_appointment", date="2025-07-01", dentist_id="DEN-01"),
        ],
    },
    {
        "kind": "lookup",
        "first": "Hi, I have a question about a past visit.",
        "instruction": "Hi, I'm Ada Moreau (patient ID PAT-001). Please pull up my appointment APT-0002.",
        "facts": _facts("PAT-001", appointment_id="APT-0002"),
        "calls": [
            _call("authorize_patient", patient_id="PAT-001"),
            _call("get_appointment", appointment_id="APT-0002"),
        ],
        "answer": [{"call": 1, "field": "fee", "value": "300.0"}],
    },
    {
        "kind": "refusal",
        "first": "Hi, I need to cancel something.",
        "instruction": "Hi, I'm Ada Moreau (patient ID PAT-001). Please pull up my appointment APT-0002. "
        "Then cancel it.",
        "facts": _facts("PAT-001", appointment_id="APT-0002"),
        "calls": [
            _call("authorize_patient", patient_id="PAT-001"),
            _call("get_appointment", appointment_id="APT-0002"),
        ],
        "refusal": {
            "name": "cancel_appointment",
            "arguments": json.dumps({"appointment_id": "APT-0002"}),
            "rule": "cancel_appointment.status",
            "domain": "ClinicDesk",
            "why": "only scheduled appointments can be cancelled",
        },
    },
    {
        "kind": "auth_failure",
        "first": "Hi, I'd like to cancel an appointment.",
        "instruction": "Hi, I'm Ada Moreau (patient ID PAT-010). Cancel my appointment APT-0001.",
        "facts": _facts("PAT-010", appointment_id="APT-0001"),
        "calls": [{**_call("authorize_patient", patient_id="PAT-010"), "expect": "refused"}],
    },
]


def make_outputs(root: Path) -> tuple[Path, list[dict]]:
    """``root/outputs`` with ``servers/ClinicDesk``, ``database/`` and
    ``dataset/train.jsonl``; returns (outputs dir, rows)."""
    from agentskiller.runtime.worker import execute_episodes_inprocess

    out = root / "outputs"
    shutil.copytree(
        FIX / "servers" / "ClinicDesk", out / "servers" / "ClinicDesk", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(FIX / "database", out / "database")
    tools = json.loads((FIX / "tool_lists" / "ClinicDesk.json").read_text())
    rows = []
    for spec in ROWS:
        calls = [
            {"tool": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in spec["calls"]
        ]
        (res,) = execute_episodes_inprocess(out / "servers" / "ClinicDesk", [calls])
        rid = hashlib.sha256(spec["instruction"].encode()).hexdigest()[:16]
        rows.append(
            {
                "id": rid,
                "env": "ClinicDesk",
                "domains": ["ClinicDesk"],
                "cross_domain": False,
                "messages": [{"role": "system", "content": POLICY}, {"role": "user", "content": spec["first"]}],
                "tools": json.dumps(tools),
                "scenario": {
                    "persona": {"name": "Ada Moreau", "manner": "polite"},
                    "reason_for_call": "a visit",
                    "instruction": spec["instruction"],
                    "known_facts": spec["facts"],
                },
                "trajectory": [c["function"]["name"] for c in spec["calls"]],
                "golden_calls": spec["calls"],
                "expected_outputs": [json.dumps(c.result) for c in res.calls],
                "initial_state_hash": res.initial_state_hash,
                "final_state_hash": res.final_state_hash,
                "task_id": f"task_{rid}",
                "template_id": "t",
                "instance_id": "i",
                "task_kind": spec["kind"],
                "grounding": [],
                "expected_answer": spec.get("answer", []),
                "refusal": spec.get("refusal"),
                "difficulty": {"calls": len(calls), "writes": 0, "lookups": 0, "domains": 1},
            }
        )
    (out / "dataset").mkdir(parents=True)
    (out / "dataset" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out, rows
