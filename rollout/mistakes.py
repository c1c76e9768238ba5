"""Ground truth for the offline assistant's injected mistakes (``--mistake-rate``).

One place says what the evaluator must conclude about an episode:

* an episode **without** a mistake must pass (its expected categories are ``{None}``);
* an episode whose mistake had **no observable effect** must pass too - a repeated cancel
  the server refuses, a read left out that nothing depended on. Whether it had one is
  decided here by replaying the calls, never by the verdict: :func:`effects`;
* an episode whose mistake had an effect must get the category :data:`EXPECTED` names for
  its kind (and task kind).

:func:`effects` replays each episode's calls and its row's golden calls (``resolve``
applied) from a fresh state in one sandboxed worker per env, and compares: the end state
(hash), the state-changing calls (tool and arguments), the policy (every write attempt
after its domain's authorization and right after the user's "yes"; none in a refusal or
authorization-failure task) and what the task asks to be told (every expected answer
value of a lookup; a refusal said at the end of a refusal task). It shares nothing with
``evaluator/`` but the servers.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentskiller.models.episodes import Episode

from .check import _told, assistant_text, calls_with_messages
from .offline_assistant import MISTAKE_KINDS
from .toolindex import index_tools

__all__ = ["EXPECTED", "Effect", "expected_categories", "agrees", "effects", "golden_calls"]

#: mistake kind -> task kind ("*": any) -> the verdict categories its observable effect must get
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    # a write with one argument changed: accepted or refused, the golden write is not matched
    # (in a refusal task any write attempt is the failure)
    # (a linked argument changed: the value carried across from the other service is broken)
    "wrong_argument": {"refusal": frozenset({"extra_write"}), "*": frozenset({"wrong_write_args", "broken_link"})},
    # "done" said of a write never made
    # (in a refusal task the "done" stands where the refusal should be)
    "skipped_step": {"refusal": frozenset({"wrong_answer"}), "*": frozenset({"missing_write"})},
    # the conversation ended before the next call: a write or an answer is missing
    "premature_end": {
        "action": frozenset({"missing_write"}),
        "lookup": frozenset({"wrong_answer"}),
        "refusal": frozenset({"wrong_answer"}),
        "*": frozenset({"missing_write", "wrong_answer"}),
    },
    # a write without asking first: a policy violation whatever the outcome
    "unconfirmed_write": {"*": frozenset({"unconfirmed_write"})},
    # the same write twice: observable only when the repeat changed the state again
    "extra_call": {"*": frozenset({"extra_write"})},
}
assert set(EXPECTED) == set(MISTAKE_KINDS), "every injected mistake kind needs its expected categories"

PASS: frozenset[str | None] = frozenset({None})


def expected_categories(kinds: Iterable[str], task_kind: str, observable: bool) -> frozenset[str | None]:
    """The categories the evaluator may give an episode with mistakes ``kinds`` (the first
    counts: at most one is injected), of a row of ``task_kind``; ``{None}`` (a pass) without
    a mistake or when it had no observable effect."""
    kinds = list(kinds)
    if not kinds or not observable:
        return PASS
    by_task = EXPECTED[kinds[0]]
    return frozenset(by_task.get(task_kind, by_task["*"]))


def agrees(category: str | None, expected: frozenset[str | None]) -> bool:
    return category in expected


# --------------------------------------------------------------------------- effects
@dataclass
class Effect:
    """Whether an episode reached its task's outcome the way the task asks: ``observable``
    is True when anything differs (``reasons`` says what)."""

    observable: bool
    reasons: list[str] = field(default_factory=list)
    state_same: bool = True
    writes_same: bool = True
    policy_ok: bool = True
    told_ok: bool = True


def golden_calls(row: dict) -> list[dict]:
    """The row's golden calls as ``{"tool", "arguments"}``, ``resolve`` rules applied from
    the row's ``expected_outputs`` (an argument taken from an earlier call's result)."""
    outputs = row.get("expected_outputs") or []
    if isinstance(outputs, str):
        outputs = json.loads(outputs)
    golden = row["golden_calls"]
    if isinstance(golden, str):
        golden = json.loads(golden)
    out = []
    for i, c in enumerate(golden):
        args = json.loads(c["function"]["arguments"] or "{}")
        for param, rule in json.loads(c.get("resolve") or "{}").items():
            j = int(rule["call"])
            res = json.loads(outputs[j]) if j < i and j < len(outputs) else None
            if isinstance(res, dict) and rule["field"] in res:
                args[param] = res[rule["field"]]
        out.append({"tool": c["function"]["name"], "arguments": args})
    return out


_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|sure|correct|confirm(?:ed)?|go ahead|please do|that'?s right|ok(?:ay)?)\b", re.I
)
_NO = re.compile(r"\b(?:no|not|don'?t|wait|stop)\b", re.I)
_REFUSES = re.compile(r"\b(?:can(?:'|no)?t|cannot|unable|not able|not allowed|won'?t be able)\b", re.I)


def _confirmed(messages: list[dict], index: int) -> bool:
    """The user message right before the assistant message at ``index`` says yes."""
    for m in reversed(messages[:index]):
        if m.get("role") == "user":
            text = m.get("content") or ""
            return bool(_YES.search(text)) and not _NO.match(text) and not re.match(r"^\W*no\b", text, re.I)
        if m.get("role") == "assistant" and not m.get("tool_calls"):
            return False  # the assistant spoke after the user without a call: a new turn
    return False


def _key(call: dict) -> tuple[str, str]:
    return call["tool"], json.dumps(call["arguments"], sort_keys=True)


def effect(ep: Episode, row: dict, mine: Any, gold: Any) -> Effect:
    """The effect of ``ep`` (replayed as ``mine``) against its row (golden replay ``gold``),
    both :class:`agentskiller.runtime.worker.EpisodeResult`."""
    reasons: list[str] = []
    kind = row.get("task_kind", "action")
    tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
    info = {t.name: t for t in index_tools(tools)}
    calls = calls_with_messages(ep)
    recs = list(mine.calls)

    state_same = mine.final_state_hash == gold.final_state_hash and not mine.error
    if not state_same:
        reasons.append("the end state differs from the golden one")
    wrote = Counter(_key(c) for (_, c), r in zip(calls, recs) if r.ok and r.changed_tables)
    gcalls = golden_calls(row)
    golden_wrote = Counter(_key(c) for c, r in zip(gcalls, gold.calls) if r.ok and r.changed_tables)
    writes_same = wrote == golden_wrote
    if not writes_same:
        reasons.append("the state-changing calls differ from the golden ones")

    policy: list[str] = []
    authorized: set[str] = set()
    for (i, c), r in zip(calls, recs):
        t = info.get(c["tool"])
        domain = c["tool"].rpartition("__")[0]
        if t is not None and t.kind == "auth":
            if r.ok:
                authorized.add(domain)
            continue
        if not ((t is not None and t.is_write) or r.changed_tables):
            continue
        if kind in ("refusal", "auth_failure"):
            policy.append(f"a write attempt ({c['tool']}) in a {kind} task")
        if domain not in authorized:
            policy.append(f"{c['tool']} before its domain was authorized")
        if not _confirmed(ep.messages, i):
            policy.append(f"{c['tool']} without the user's yes right before")
    reasons += policy

    told: list[str] = []
    text = assistant_text(ep)
    if kind == "lookup":
        for a in row.get("expected_answer") or []:
            value = json.loads(a["value"])
            if not _told(value, text):
                told.append(f"the answer {a['value']} was not told")
    if kind == "refusal":
        last = next((m.get("content") or "" for m in reversed(ep.messages) if m.get("role") == "assistant"), "")
        if not _REFUSES.search(last):
            told.append("the refusal was not said at the end")
    if ep.stop_reason not in ("user_stop",):
        told.append(f"the episode was cut off ({ep.stop_reason})")
    reasons += told
    return Effect(
        observable=bool(reasons),
        reasons=reasons,
        state_same=state_same,
        writes_same=writes_same,
        policy_ok=not policy,
        told_ok=not told,
    )


def effects(episodes: list[Episode], rows: list[dict], outputs_dir: str | Path) -> dict[str, Effect]:
    """``episode_id -> Effect`` for every episode, from sandboxed replays of its calls and
    its row's golden calls (one worker per env)."""
    from agentskiller.runtime.worker import execute_episodes

    from .transport import server_dir

    by_id = {r["id"]: r for r in rows}
    by_env: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_env.setdefault(ep.env, []).append(ep)
    out: dict[str, Effect] = {}
    for env, eps in sorted(by_env.items()):
        batch = [{"id": "e" + ep.episode_id, "calls": [c for _, c in calls_with_messages(ep)]} for ep in eps]
        wanted = sorted({ep.query_id for ep in eps})
        batch += [{"id": "g" + q, "calls": golden_calls(by_id[q])} for q in wanted]
        results = {r.id: r for r in execute_episodes(server_dir(Path(outputs_dir), env), batch)}
        for ep in eps:
            out[ep.episode_id] = effect(
                ep, by_id[ep.query_id], results["e" + ep.episode_id], results["g" + ep.query_id]
            )
    return out


# --------------------------------------------------------------------------- agreement
def agreement(episodes: list[Episode], verdicts: Iterable[Any], rows: list[dict], outputs_dir: str | Path) -> dict:
    """How often the verdicts (objects or dicts with ``episode_id``, ``category``) say what
    the injected mistakes imply: ``{"episodes", "with_mistakes", "observable",
    "unobservable", "agree", "agreement", "by_kind", "disagreements"}``."""
    eff = effects(episodes, rows, outputs_dir)
    by_row = {r["id"]: r for r in rows}
    cats = {}
    for v in verdicts:
        d = v if isinstance(v, dict) else v.model_dump()
        cats[d["episode_id"]] = d.get("category") if not d.get("passed") else None
    agree = 0
    with_m = observable = 0
    by_kind: dict[str, Counter] = {}
    disagreements = []
    for ep in episodes:
        kinds = [m.kind for m in ep.mistakes]
        e = eff[ep.episode_id]
        task_kind = by_row[ep.query_id].get("task_kind", "action")
        want = expected_categories(kinds, task_kind, e.observable)
        got = cats.get(ep.episode_id, "missing verdict")
        ok = agrees(got, want)
        agree += ok
        label = kinds[0] if kinds else "none"
        k = by_kind.setdefault(label, Counter())
        k["episodes"] += 1
        k["agree"] += ok
        if kinds:
            with_m += 1
            observable += e.observable
            k["observable"] += e.observable
        if not ok:
            disagreements.append(
                {
                    "episode_id": ep.episode_id,
                    "query_id": ep.query_id,
                    "task_kind": task_kind,
                    "mistake": label,
                    "observable": e.observable,
                    "expected": sorted(want, key=str),
                    "verdict": got,
                    "effect": e.reasons,
                }
            )
    n = len(episodes)
    return {
        "episodes": n,
        "with_mistakes": with_m,
        "observable": observable,
        "unobservable": with_m - observable,
        "agree": agree,
        "agreement": round(agree / n, 4) if n else None,
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "disagreements": disagreements,
    }
