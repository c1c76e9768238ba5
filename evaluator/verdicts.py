"""One episode's verdict, from its replay and its task's golden replay.

The checks (end state, writes, policy, answer, simulator values, cut-off) and the rule that
picks exactly one failure category are described in :mod:`evaluator.core`; here they are
computed from the replayed calls (the data classes are in :mod:`evaluator.replays`, the
text rules in :mod:`evaluator.checks`).
"""

from __future__ import annotations

import json
from typing import Any

from agentskiller.models.episodes import Episode, Verdict
from agentskiller.runtime.worker import EpisodeResult

from . import checks
from .calls import AgentCall
from .normalize import compare_changes, normalize_arguments
from .replays import EnvData, Golden, Judge, Options, Step, make_replay

__all__ = ["MODES", "CATEGORY_ORDER", "Judge", "judge_episode", "infra_verdict"]

MODES = ("all", "end_state", "actions", "answer", "policy")
CATEGORY_ORDER = (
    "infra_error",
    "unauthorized_write",
    "unconfirmed_write",
    "simulator_error",
    "extra_write",
    "broken_link",
    "wrong_write_args",
    "missing_write",
    "wrong_answer",
    "premature_stop",
)
#: which categories each mode can give (infra_error: every mode)
MODE_CATEGORIES = {
    "all": set(CATEGORY_ORDER),
    "end_state": {"infra_error", "extra_write", "broken_link", "wrong_write_args", "missing_write", "premature_stop"},
    "actions": {"infra_error", "extra_write", "broken_link", "wrong_write_args", "missing_write"},
    "answer": {"infra_error", "wrong_answer", "premature_stop"},
    "policy": {
        "infra_error",
        "unauthorized_write",
        "unconfirmed_write",
        "extra_write",
        "wrong_answer",
        "premature_stop",
    },
}
_SERVER_FAULTS = ("crash", "timeout", "non_json")
_CUT_OFF = ("max_turns", "assistant_error", "transfer", "out_of_scope")


def _base(ep: Episode, row: dict | None) -> dict:
    return {
        "episode_id": ep.episode_id,
        "query_id": ep.query_id,
        "task_id": ep.task_id,
        "env": ep.env,
        "task_kind": (row or {}).get("task_kind", "unknown"),
        "episode": ep.episode,
    }


def infra_verdict(ep: Episode, row: dict | None, why: str) -> Verdict:
    return Verdict(
        **_base(ep, row),
        passed=False,
        category="infra_error",
        infra_error=True,
        scores={"end_state": None, "policy": None, "answer": None},
        detail=f"infra_error: {why}",
        evidence={"infra": why},
    )


def _steps(calls: list[AgentCall], res: EpisodeResult) -> list[Step]:
    out: list[Step] = []
    recs = iter(res.calls)
    for c in calls:
        if c.arguments is None:
            out.append(Step(c, False, False, "arguments are not a JSON object", "bad_arguments"))
            continue
        r = next(recs, None)
        if r is None:
            out.append(Step(c, False, False, "not replayed", "bad_arguments"))
            continue
        out.append(Step(c, r.ok, bool(r.changed_tables), r.error, r.error_type, r.result))
    return out


def _arg_scalars(steps: list[Step]) -> list[str]:
    out = []
    for s in steps:
        for v in (s.call.arguments or {}).values():
            vals = v if isinstance(v, list) else [v]
            out.extend(str(x) for x in vals if isinstance(x, (str, int, float)) and not isinstance(x, bool))
    return out


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-9
    return a is not None and str(a) == str(b)


def _holds(relation: str, got: Any, source: Any) -> bool:
    """``got`` (the argument) stands in ``relation`` to ``source`` (the result field)."""
    if relation == "equal":
        return _same_value(got, source)
    try:
        if relation == "within":
            return float(got) <= float(source)
        a, b = str(got), str(source)
        return a > b if relation == "after" else a < b  # ISO dates compare as strings
    except (TypeError, ValueError):
        return False


def broken_links(row: dict, steps: list[Step], missing_writes: frozenset[str] = frozenset()) -> list[dict]:
    """The row's links the episode broke: a call of the link's target tool whose argument
    is not (in the link's relation to) the field of the latest result of the link's source
    tool before it, or a target call with no such result before it. A target tool never
    called breaks no link (that is a missing write), nor does a source that is a golden
    write the assistant never made (``missing_writes``: the missing write is the failure,
    the hand-over after it only its consequence)."""
    names = [c["function"]["name"] for c in row.get("golden_calls") or []]
    out = []
    for lk in row.get("links") or []:
        i, j = int(lk["from"]["call"]), int(lk["to"]["call"])
        if i >= len(names) or j >= len(names):
            continue
        src, dst, field, param = names[i], names[j], lk["from"]["field"], lk["to"]["param"]
        if src in missing_writes and not any(s.call.name == src and s.ok for s in steps):
            continue
        relation = lk.get("relation", "equal")
        latest: Any = None
        for s in steps:
            if s.call.name == src and s.ok and isinstance(s.result, dict) and field in s.result:
                latest = s.result[field]
            if s.call.name != dst or s.call.arguments is None:
                continue
            got = s.call.arguments.get(param)
            if latest is None or not _holds(relation, got, latest):
                out.append(
                    {
                        "call": s.call.index,
                        "tool": dst,
                        "param": param,
                        "got": got,
                        "source": f"{src}.{field}",
                        "expected": latest,
                        "relation": relation,
                    }
                )
    return out


def judge_episode(
    ep: Episode, g: Golden, calls: list[AgentCall], res: EpisodeResult | str, data: EnvData, opts: Options
) -> Verdict:
    row = g.row
    if g.error:
        return infra_verdict(ep, row, g.error)
    if isinstance(res, str):
        return infra_verdict(ep, row, res)
    if res.error:
        return infra_verdict(ep, row, f"replay: {res.error}")
    steps = _steps(calls, res)
    for s in steps:
        if s.error_type in _SERVER_FAULTS:
            return infra_verdict(
                ep, row, f"call {s.call.index} ({s.call.name}) broke the server: {s.error_type}: {s.error}"
            )
    cat = data.catalog
    kind = row.get("task_kind", "action")
    gold = g.replay
    mine = make_replay(res, data)
    evidence: dict[str, Any] = {"calls": len(calls), "tool_kinds": cat.source}
    reasons: list[str] = []

    # ---- end state
    state_diff = compare_changes(gold.canonical, mine.canonical)
    state_ok = not state_diff
    if state_diff:
        evidence["state_diff"] = state_diff
        reasons.append(f"end state differs in {', '.join(sorted({d['table'] for d in state_diff}))}")

    # ---- actions
    def is_write(s: Step) -> bool:
        return cat.is_write(s.call.name) or s.changed

    agent_writes = [s for s in steps if s.ok and is_write(s)]
    failed_writes = [s for s in steps if not s.ok and is_write(s)]
    a_keys = [(s.call.name, normalize_arguments(s.call.arguments, mine.id_map)) for s in agent_writes]
    unmatched_agent = list(range(len(agent_writes)))
    unmatched_gold: list[tuple[str, str, int]] = []
    for name, args, gi in g.writes:
        hit = next((k for k in unmatched_agent if a_keys[k] == (name, args)), None)
        if hit is None:
            unmatched_gold.append((name, args, gi))
        else:
            unmatched_agent.remove(hit)
    matched = len(g.writes) - len(unmatched_gold)
    precision = matched / len(agent_writes) if agent_writes else None
    recall = matched / len(g.writes) if g.writes else None
    ok_calls = {(s.call.name, normalize_arguments(s.call.arguments, mine.id_map)) for s in steps if s.ok}
    read_recall = sum((n, a) in ok_calls for n, a, _ in g.reads) / len(g.reads) if g.reads else None

    wrong_args: list[dict] = []
    missing: list[dict] = []
    for name, args, gi in unmatched_gold:
        k = next((k for k in unmatched_agent if a_keys[k][0] == name), None)
        if k is not None:
            unmatched_agent.remove(k)
            wrong_args.append({"golden_call": gi, "tool": name, "expected": args, "got": a_keys[k][1]})
            continue
        f = next(
            (
                s
                for s in failed_writes
                if s.call.name == name and normalize_arguments(s.call.arguments, mine.id_map) != args
            ),
            None,
        )
        if f is not None:
            wrong_args.append(
                {
                    "golden_call": gi,
                    "tool": name,
                    "expected": args,
                    "got": normalize_arguments(f.call.arguments, mine.id_map),
                    "refused": f.error,
                }
            )
            continue
        missing.append({"golden_call": gi, "tool": name, "arguments": args})
    extra = [
        {"call": agent_writes[k].call.index, "tool": agent_writes[k].call.name, "arguments": a_keys[k][1]}
        for k in unmatched_agent
        if agent_writes[k].changed
    ]
    broken = broken_links(row, steps, frozenset(m["tool"] for m in missing))
    if broken:
        evidence["broken_links"] = broken
    actions_ok = not unmatched_gold and not extra and not broken
    for key, items in (("extra_writes", extra), ("wrong_write_args", wrong_args), ("missing_writes", missing)):
        if items:
            evidence[key] = items
    if failed_writes:
        evidence["refused_writes"] = [
            {"call": s.call.index, "tool": s.call.name, "error": s.error} for s in failed_writes
        ]

    # ---- policy
    authorized: set[str] = set()
    failed_auth = False
    unauthorized: list[str] = []
    unconfirmed: list[str] = []
    forbidden: list[str] = []
    for s in steps:
        name = s.call.name
        dom = cat.domain_of(name)
        if cat.is_authorize(name):
            if s.ok:
                authorized.add(dom)
            else:
                failed_auth = True
            continue
        if not is_write(s):
            continue
        where = f"call {s.call.index} ({name})"
        if kind == "auth_failure" and failed_auth:
            unauthorized.append(f"{where} after the failed authorization")
        elif dom not in authorized:
            unauthorized.append(f"{where} before {dom or 'its domain'} was authorized")
        if opts.require_confirmation and not checks.is_confirmation(
            checks.user_turn_before(ep.messages, s.call.message)
        ):
            unconfirmed.append(f"{where} without the user's confirmation in the turn before")
        if kind == "refusal":
            forbidden.append(f"{where}: a refusal task makes no write")
    final_text = checks.last_assistant_text(ep.messages)
    refusal_ok: bool | None = None
    if kind == "refusal":
        ref = row.get("refusal") or {}
        refusal_ok = checks.refusal_explained(final_text, ref, cat.bare(str(ref.get("name", ""))))
    policy_ok = not unauthorized and not unconfirmed and not forbidden and refusal_ok is not False
    for key, items in (("unauthorized", unauthorized), ("unconfirmed", unconfirmed), ("forbidden", forbidden)):
        if items:
            evidence[key] = items
            reasons.extend(items)
    if refusal_ok is False:
        reasons.append("the final message does not explain the refusal")

    # ---- answer
    answer_ok: bool | None = None
    if kind == "lookup":
        text = "\n".join(
            m["content"] for m in ep.messages if m.get("role") == "assistant" and isinstance(m.get("content"), str)
        )
        values = []
        for a in row.get("expected_answer") or []:
            try:
                values.append(json.loads(a["value"]))
            except (ValueError, KeyError, TypeError):
                values.append(a.get("value"))
        not_said = [v for v in values if not checks.says_value(text, v)]
        answer_ok = not not_said
        if not_said:
            evidence["answer_missing"] = not_said
            reasons.append(f"the answer does not state {', '.join(map(str, not_said))}")

    # ---- simulator and cut-off
    ungrounded = checks.ungrounded_user_values(row, ep.messages)
    used = [u for u in ungrounded if any(checks.used_in_argument(u["value"], a) for a in _arg_scalars(steps))]
    if ungrounded:
        evidence["ungrounded_user_values"] = ungrounded
    cut_off = ep.stop_reason in _CUT_OFF or (ep.stop_reason == "user_stop" and checks.asks_to_proceed(final_text))
    if cut_off:
        evidence["cut_off"] = ep.stop_reason

    live_match = None if ep.final_state_hash is None else ep.final_state_hash == res.final_state_hash

    # ---- verdict
    gates = {
        "all": state_ok and policy_ok and answer_ok is not False,
        "end_state": state_ok,
        "actions": actions_ok,
        "answer": answer_ok is not False,
        "policy": policy_ok,
    }
    passed = gates[opts.mode]
    category = None
    if not passed:
        flags = {
            "state_ok": state_ok,
            "actions_ok": actions_ok,
            "answer_ok": answer_ok,
            "refusal_ok": refusal_ok,
            "unauthorized": bool(unauthorized),
            "unconfirmed": bool(unconfirmed),
            "forbidden": bool(forbidden),
            "simulator": bool(used),
            "extra": bool(extra),
            "wrong": bool(wrong_args),
            "missing": bool(missing),
            "broken": bool(broken),
            "cut_off": cut_off,
        }
        category = _category(opts.mode, flags)
    if used:
        reasons.append(f"the user stated values its scenario does not hold: {', '.join(u['value'] for u in used)}")
    for items, what in ((extra, "extra write"), (wrong_args, "wrong arguments in"), (missing, "missing write")):
        for it in items:
            reasons.append(f"{what} {it['tool']}")
    for b in broken:
        reasons.append(f"broken link: {b['tool']}.{b['param']}={b['got']!r}, not {b['source']} ({b['expected']!r})")
    scores: dict[str, float | bool | None] = {
        "end_state": state_ok,
        "policy": policy_ok,
        "answer": answer_ok,
        "write_precision": precision,
        "write_recall": recall,
        "read_recall": read_recall,
        "live_state_match": live_match,
    }
    verdict = Verdict(
        **_base(ep, row),
        passed=passed,
        category=category,
        scores=scores,
        detail="pass" if passed else f"{category}: " + "; ".join(reasons or ["the checks failed"]),
        evidence=evidence,
    )
    if opts.judge is not None:
        _apply_judge(opts.judge, ep, row, verdict)
    return verdict


def _category(mode: str, flags: dict[str, bool | None]) -> str:
    """The first category of :data:`CATEGORY_ORDER` the flags support in ``mode`` (a
    narrower mode ignores what its check does not look at)."""
    f = dict(flags)
    policy_off = {"unauthorized": False, "unconfirmed": False, "forbidden": False, "refusal_ok": None}
    if mode == "end_state":
        f.update(policy_off, answer_ok=None, simulator=False)
    elif mode == "answer":
        f.update(policy_off, state_ok=True, simulator=False)
    elif mode == "policy":
        f.update(state_ok=True, answer_ok=None, simulator=False)
    goal_missed = not f["state_ok"] or f["answer_ok"] is False or f["refusal_ok"] is False
    if mode == "actions":
        candidates = {
            "extra_write": f["extra"],
            "broken_link": f.get("broken", False),
            "wrong_write_args": f["wrong"],
            "missing_write": f["missing"] or not f["actions_ok"],
        }
    else:
        state_bad = not f["state_ok"]
        candidates = {
            "unauthorized_write": f["unauthorized"],
            "unconfirmed_write": f["unconfirmed"],
            "simulator_error": f["simulator"] and (goal_missed or f["forbidden"]),
            "extra_write": f["forbidden"] or (state_bad and f["extra"]),
            "broken_link": state_bad and f.get("broken", False),
            "wrong_write_args": state_bad and f["wrong"],
            "missing_write": state_bad and f["missing"] and not f["cut_off"],
            "wrong_answer": (f["answer_ok"] is False or f["refusal_ok"] is False) and not f["cut_off"],
            "premature_stop": goal_missed and f["cut_off"],
        }
    allowed = MODE_CATEGORIES[mode]
    for cat in CATEGORY_ORDER:
        if cat in allowed and candidates.get(cat):
            return cat
    if mode in ("answer", "policy"):
        return "wrong_answer"
    return "wrong_write_args"  # the end state differs although every write matched


def _apply_judge(judge: Judge, ep: Episode, row: dict, verdict: Verdict) -> None:
    try:
        out = judge(ep, row, verdict)
    except Exception as exc:  # a judge is advisory: its failure is recorded, never fatal
        verdict.evidence["judge_error"] = f"{type(exc).__name__}: {exc}"
        verdict.scores["judge"] = None
        return
    if isinstance(out, dict):
        verdict.scores["judge"] = out.get("score")
        verdict.evidence["judge"] = out
    else:
        verdict.scores["judge"] = None if out is None else float(out)
