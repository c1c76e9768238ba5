"""Task audit: what a trainer finds when trying each dataset row, from the row alone.

Nothing here reads a task's stored grounding map, instance or tasks artifact: a row is
replayed on its server's fresh state, and every golden-call argument is looked for where an
agent could find it -

* ``user``: the scenario states it (instruction, known facts or first message), verbatim
  or in a natural rendering (:func:`agentskiller.grounding.mentions`, IDs verbatim only);
* ``call:i.path``: an earlier call's replayed result holds it (``call:1.0.appointment_id``:
  field ``appointment_id`` of the first record call 1 returned);
* ``schema``: the tool's parameter schema allows it as a literal (an enum value, a boolean);
* ``now``: the simulation clock (the policy states the current time).

The other figures: list / search calls that return nothing or miss the next call's target,
the share of each task kind, writes to a record created in the same task, check-in calls
outside the window the policy states (read from the policy line and the replayed record), and the variety
of the instructions (distinct first-four-word openings, near-duplicate pairs by token
Jaccard after masking IDs, numbers and names). ``benchmarks/task_quality.py`` prints them;
the default-run tests assert them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from agentskiller.grounding import EMAIL_RE, ID_RE, NUMBER_RE, iso_when, mentions

_NAME_RE = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
_TOKEN_RE = re.compile(r"[a-z]+|<[a-z]+>")
NOW_RE = re.compile(r"current (?:date and )?time is (\d{4}-\d{2}-\d{2}T[\d:]+Z?)", re.I)
#: a policy's check-in window line: hours, the column (``Table.column``), the tool
WINDOW_RE = re.compile(
    r"Check-in opens (\d+(?:\.\d+)?) hours? before (?:the day in )?`[\w]*\.?(\w+)`.*?RULE: ([\w-]+)\.window"
)


def server_dir(outputs: Path, env: str) -> Path:
    """An env's server: ``servers/{domain}`` or a pair's ``cross/{pair}/server``."""
    return outputs / "cross" / env / "server" if "+" in env else outputs / "servers" / env


def replay(row: dict, outputs: Path) -> list[dict]:
    """Each golden call on a fresh state: ``{"ok", "result", "error", "state_hash"}``; the
    ``resolve`` rules (an ID a create returned) are applied the way every replay does."""
    from agentskiller.runtime.environment import load_environment

    env = load_environment(server_dir(outputs, row["env"]))
    session = env.new_session()
    out: list[dict] = []
    for call in row["golden_calls"]:
        args = json.loads(call["function"]["arguments"])
        for param, rule in json.loads(call["resolve"]).items():
            args[param] = out[rule["call"]]["result"][rule["field"]]
        rec = session.call(call["function"]["name"], args)
        out.append({"ok": rec.ok, "result": rec.result, "error": rec.error, "state_hash": session.state.hash()})
    return out


def _scalars(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [x for k, v in sorted(obj.items()) for x in _scalars(v, f"{path}.{k}" if path else str(k))]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _scalars(v, f"{path}.{i}" if path else str(i))]
    return [(path, obj)]


def _param_schemas(row: dict) -> dict[str, dict]:
    return {t["function"]["name"]: t["function"].get("parameters", {}) for t in json.loads(row["tools"])}


def _stated(text: str, value: Any) -> bool:
    """``text`` states ``value``; an ID or a short number must stand as a whole token."""
    v = str(value)
    if isinstance(value, bool):
        return False
    if ID_RE.fullmatch(v) or re.fullmatch(r"-?\d+(?:\.\d+)?", v):
        if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text):
            return True
        if ID_RE.fullmatch(v):
            return False
    return mentions(text, value)


def derive_grounding(row: dict, outputs: list[dict]) -> list[dict[str, str | None]]:
    """Per golden call, argument -> where an agent finds its value (None: nowhere)."""
    scen = row["scenario"]
    facts = " ; ".join(f"{f['fact']}: {f['value']}" for f in scen["known_facts"])
    user_text = " ".join([scen["instruction"], facts, row["messages"][1]["content"]])
    schemas = _param_schemas(row)
    m = NOW_RE.search(row["messages"][0]["content"])
    now = m.group(1) if m else None
    out = []
    for i, call in enumerate(row["golden_calls"]):
        name = call["function"]["name"]
        args = json.loads(call["function"]["arguments"])
        for param, rule in json.loads(call["resolve"]).items():
            args[param] = (outputs[rule["call"]]["result"] or {}).get(rule["field"])
        props = schemas.get(name, {}).get("properties", {})
        got: dict[str, str | None] = {}
        for param, value in sorted(args.items()):
            got[param] = source_of(value, props.get(param, {}), user_text, outputs[:i], now)
        out.append(got)
    return out


def source_of(value: Any, schema: dict, user_text: str, earlier: list[dict], now: str | None) -> str | None:
    if _stated(user_text, value):
        return "user"
    for j, o in enumerate(earlier):
        if not o["ok"]:
            continue
        for path, v in _scalars(o["result"]):
            if v == value and not isinstance(v, bool):
                return f"call:{j}.{path}"
    if value in (schema.get("enum") or []) or (isinstance(value, bool) and schema.get("type") == "boolean"):
        return "schema"
    if now and isinstance(value, str) and iso_when(value) and value[:10] == now[:10]:
        return "now"
    return None


def list_calls(row: dict, outputs: list[dict]) -> list[dict]:
    """Every golden call that returned a list: empty or not, and whether the next call's
    record argument (an ID) is among the records it returned."""
    out = []
    calls = row["golden_calls"]
    for i, (call, o) in enumerate(zip(calls, outputs)):
        if not o["ok"] or not isinstance(o["result"], list):
            continue
        ids = {str(v) for rec in o["result"] for _, v in _scalars(rec)}
        nxt = None
        if i + 1 < len(calls):
            args = json.loads(calls[i + 1]["function"]["arguments"])
            id_args = [str(v) for v in args.values() if isinstance(v, str) and ID_RE.fullmatch(v)]
            nxt = any(a in ids for a in id_args) if id_args else None
        out.append({"call": i, "name": call["function"]["name"], "records": len(o["result"]), "next_target_in": nxt})
    return out


def window_violations(row: dict, outputs: list[dict]) -> tuple[int, int]:
    """(check-in calls, those whose record time lies outside the window the policy states):
    read from the policy text and the replayed result, not from the server's verdict."""
    import datetime as dt

    policy = row["messages"][0]["content"]
    m = NOW_RE.search(policy)
    if not m:
        return 0, 0
    now = dt.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    windows = {tool: (float(h), col) for h, col, tool in WINDOW_RE.findall(policy)}
    calls = bad = 0
    for call, o in zip(row["golden_calls"], outputs):
        w = windows.get(call["function"]["name"])
        if w is None:
            continue
        calls += 1
        when = (o["result"] or {}).get(w[1]) if o["ok"] and isinstance(o["result"], dict) else None
        if not isinstance(when, str):
            bad += 1
            continue
        t = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if "T" in when else None
        if t is None:
            day = dt.date.fromisoformat(when[:10])
            bad += not (now.date() <= day <= (now + dt.timedelta(hours=w[0])).date())
        else:
            bad += not (now <= t <= now + dt.timedelta(hours=w[0]))
    return calls, bad


def changes_created_record(row: dict, outputs: list[dict]) -> bool:
    """A call that changes the state and acts on the record a create earlier in the same
    task returned (its ID comes from a ``resolve`` rule): the user changes what they just made.
    A cross-domain link is a ``resolve`` rule too, but on a value, never an ID: not counted."""
    before = row.get("initial_state_hash")
    for call, o in zip(row["golden_calls"], outputs):
        ids = [r for r in json.loads(call["resolve"]).values() if str(r.get("field", "")).endswith("_id")]
        if ids and o["ok"] and o["state_hash"] != before:
            return True
        before = o["state_hash"]
    return False


def masked(text: str) -> list[str]:
    """The words of ``text`` with emails, names (runs of capitalised words), IDs and
    numbers replaced by ``<email>``, ``<name>``, ``<id>``, ``<num>``."""
    t = EMAIL_RE.sub(" <email> ", text)
    t = _NAME_RE.sub(" <name> ", t)
    t = ID_RE.sub(" <id> ", t)
    t = NUMBER_RE.sub(" <num> ", t)
    return _TOKEN_RE.findall(t.lower())


def masked_tokens(text: str) -> set[str]:
    return set(masked(text))


def opening(text: str, n: int = 4) -> str:
    """The first ``n`` words after masking (a name is not variety)."""
    return " ".join(masked(text)[:n])


def near_duplicate_pairs(texts: list[str], threshold: float = 0.8) -> int:
    toks = [masked_tokens(t) for t in texts]
    n = 0
    for a, b in itertools.combinations(range(len(toks)), 2):
        union = toks[a] | toks[b]
        if union and len(toks[a] & toks[b]) / len(union) >= threshold:
            n += 1
    return n


def _domain(tool: str) -> str:
    return tool.split("__", 1)[0] if "__" in tool else ""


def unstated_links(row: dict, outputs: list[dict]) -> list[dict]:
    """Arguments a cross-domain row's assistant must carry across, found from the row alone
    (its declared ``links`` are not read): a golden call's argument (resolve rules applied)
    that equals a field of an earlier call's *replayed* result from the other service and
    that appears nowhere in the instruction, the known facts or the first message. Each is
    ``{"from": {"call", "field"}, "to": {"call", "param"}, "value"}``."""
    if not row.get("cross_domain"):
        return []
    scen = row["scenario"]
    facts = " ; ".join(f"{f['fact']}: {f['value']}" for f in scen["known_facts"])
    user_text = " ".join([scen["instruction"], facts, row["messages"][1]["content"]])
    found = []
    for j, call in enumerate(row["golden_calls"]):
        name = call["function"]["name"]
        args = json.loads(call["function"]["arguments"])
        for param, rule in json.loads(call["resolve"]).items():
            args[param] = (outputs[rule["call"]]["result"] or {}).get(rule["field"])
        for param, value in sorted(args.items()):
            if value is None or isinstance(value, bool) or len(str(value)) < 3 or _stated(user_text, value):
                continue
            src = None
            for i in range(j - 1, -1, -1):
                other = row["golden_calls"][i]["function"]["name"]
                if _domain(other) == _domain(name) or not outputs[i]["ok"]:
                    continue
                hit = next(
                    (p for p, v in _scalars(outputs[i]["result"]) if v == value and not isinstance(v, bool)), None
                )
                if hit is not None:
                    src = {"call": i, "field": hit}
                    break
            if src is not None:
                found.append({"from": src, "to": {"call": j, "param": param}, "value": value})
    return found


def audit(rows: list[dict], outputs_dir: Path) -> dict:
    """The figures of one dataset (see the module docstring); ``outputs_dir``: the run's ``outputs/``."""
    args_total = grounded = rows_ungrounded = 0
    sources: Counter = Counter()
    lists: list[dict] = []
    kinds: Counter = Counter()
    same_state = {"rows": 0, "equal": 0}
    examples: list[dict] = []
    changed_created = 0
    checkins = window_bad = 0
    cross = cross_linked = declared = confirmed = 0
    linked_by_env: Counter = Counter()
    for row in rows:
        outputs = replay(row, outputs_dir)
        if row.get("cross_domain"):
            cross += 1
            found = unstated_links(row, outputs)
            cross_linked += bool(found)
            linked_by_env[row["env"]] += bool(found)
            targets = {(f["to"]["call"], f["to"]["param"]) for f in found}
            for lk in row.get("links") or []:
                declared += 1
                confirmed += (lk["to"]["call"], lk["to"]["param"]) in targets
        g = derive_grounding(row, outputs)
        bad = [(i, p) for i, call in enumerate(g) for p, s in call.items() if s is None]
        args_total += sum(len(c) for c in g)
        grounded += sum(1 for c in g for s in c.values() if s is not None)
        sources.update(s.split(":")[0] for c in g for s in c.values() if s is not None)
        if bad:
            rows_ungrounded += 1
            if len(examples) < 5:
                examples.append({"id": row["id"], "ungrounded": bad})
        lists += list_calls(row, outputs)
        changed_created += changes_created_record(row, outputs)
        c, b = window_violations(row, outputs)
        checkins, window_bad = checkins + c, window_bad + b
        kind = row.get("task_kind", "action")
        kinds[kind] += 1
        if kind in ("refusal", "auth_failure"):
            same_state["rows"] += 1
            last = outputs[-1]["state_hash"] if outputs else row.get("initial_state_hash")
            same_state["equal"] += last == row.get("initial_state_hash")
    texts = [r["scenario"]["instruction"] for r in rows]
    n = len(rows) or 1
    return {
        "rows": len(rows),
        "arguments": args_total,
        "arguments_grounded": grounded,
        "grounded_share": round(grounded / (args_total or 1), 4),
        "rows_with_ungrounded_argument": rows_ungrounded,
        "sources": dict(sorted(sources.items())),
        "ungrounded_examples": examples,
        "list_calls": len(lists),
        "list_calls_empty": sum(1 for x in lists if x["records"] == 0),
        "list_calls_missing_next_target": sum(1 for x in lists if x["next_target_in"] is False),
        "task_kinds": {k: round(v / n, 3) for k, v in sorted(kinds.items())},
        "refusal_and_auth_failure_rows_state_unchanged": f"{same_state['equal']}/{same_state['rows']}",
        "rows_changing_a_created_record": changed_created,
        "rows_changing_a_created_record_share": round(changed_created / n, 3),
        "check_in_calls": checkins,
        "time_window_violations": window_bad,
        "distinct_openings_4": len({opening(t) for t in texts}),
        "distinct_openings_4_share": round(len({opening(t) for t in texts}) / n, 3),
        "near_duplicate_pairs": near_duplicate_pairs(texts),
        "near_duplicate_pairs_share": round(near_duplicate_pairs(texts) / n, 3),
        "known_facts_mean": round(sum(len(r["scenario"]["known_facts"]) for r in rows) / n, 2),
        # interlocked storylines (issue 11): found from the replayed rows, not the declared links
        "cross_rows": cross,
        "cross_rows_with_unstated_link": cross_linked,
        "cross_rows_with_unstated_link_share": round(cross_linked / (cross or 1), 3),
        "pairs_with_3_linked_rows": sum(1 for v in linked_by_env.values() if v >= 3),
        "linked_rows_by_pair": dict(sorted(linked_by_env.items())),
        "declared_links_unstated": f"{confirmed}/{declared}",
    }
