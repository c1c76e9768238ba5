"""s15 task kinds: which instance of an env is an action, a lookup, a refusal or an auth failure.

* ``lookup``: the template's trajectory only reads; the user asks to be told some values of
  what the last call returns (:func:`choose_asks`; s16 records them as ``expected_answer``).
* ``refusal``: the user asks for a write the policy forbids. s15 builds the instance so
  that the trajectory's first write breaks one of that tool's enforced rules - a status
  precondition (cancelling a completed appointment), a check-in ``window`` (checking in for
  an appointment weeks away), a ``bound`` (more guests than the room holds), a ``range`` or a
  ``time`` rule (a date already past) - and the golden path stops
  before it: it makes no write. The write itself is kept as the task's ``refusal`` and s16
  proves the server refuses it.
* ``auth_failure``: the user gives an ID that does not exist (two digits of their own
  swapped, as people mistype): the golden path is that one authorize call, refused.
* ``action``: everything else.

:func:`plan_kinds` spreads the configured shares over an env's instance slots: lookups are
what the read-only templates give; the write templates' slots are dealt out by largest
deficit, so a refusal a template cannot make is made up by a later one.
"""

from __future__ import annotations

import random
from typing import Any

from agentskiller.models.policy_rules import PolicyRule

#: rule kinds a refusal instance can break on purpose, in the order they are tried
REFUSAL_KINDS = ("precondition", "window", "bound", "range", "time")


def plan_kinds(write_templates: int, n: int, shares: dict[str, float]) -> list[list[str]]:
    """Per write template, the kinds of its ``n`` instance slots (action / refusal /
    auth_failure), proportional to ``shares`` renormalised over those three kinds."""
    kinds = ("action", "refusal", "auth_failure")
    total = sum(shares.get(k, 0.0) for k in kinds) or 1.0
    want = {k: shares.get(k, 0.0) / total for k in kinds}
    got = dict.fromkeys(kinds, 0)
    out: list[list[str]] = []
    dealt = 0
    for _ in range(write_templates):
        row = []
        for _ in range(n):
            dealt += 1
            # no template gets two instances of the same non-action kind
            pick = max(kinds, key=lambda k: (want[k] * dealt - got[k] if k == "action" or k not in row else -1, k))
            got[pick] += 1
            row.append(pick)
        out.append(row)
    return out


def rules_by_tool(rules: list[PolicyRule]) -> dict[str, list[PolicyRule]]:
    out: dict[str, list[PolicyRule]] = {}
    for r in rules:
        if r.tool:
            out.setdefault(r.tool, []).append(r)
    return out


def refusal_rules(tool: str, rules: dict[str, list[PolicyRule]]) -> list[PolicyRule]:
    """The enforced rules of ``tool`` a refusal instance may break, in :data:`REFUSAL_KINDS` order."""
    mine = [r for r in rules.get(tool, []) if r.kind in REFUSAL_KINDS]
    return sorted(mine, key=lambda r: (REFUSAL_KINDS.index(r.kind), r.id))


def wrong_id(user_id: Any, taken: set[str], rng: random.Random) -> str | None:
    """An ID like ``user_id`` that names nobody: two adjacent digits swapped (a typo), else
    one digit changed."""
    text = str(user_id)
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    tries: list[str] = []
    for a, b in zip(digits, digits[1:]):
        if b == a + 1 and text[a] != text[b]:
            tries.append(text[:a] + text[b] + text[a] + text[b + 1 :])
    rng.shuffle(tries)
    for i in digits[::-1]:
        tries.append(text[:i] + str((int(text[i]) + 1 + rng.randrange(8)) % 10) + text[i + 1 :])
    return next((t for t in tries if t not in taken and t != text), None)


def choose_asks(kind: str, columns: list[tuple[str, str]], stated: set[str], rng: random.Random) -> list[str]:
    """Columns a lookup user asks about: for a record (``read``) one or two of its
    attributes, for a list (``search``) one, none the user states themselves; a ``compute``
    answer is its whole result (empty list)."""
    if kind == "compute":
        return []
    free = [c for c, t in columns if c not in stated and t != "text"]
    if not free:
        return []
    prefer = [c for c, t in columns if c in free and (t in ("date", "datetime", "number", "integer") or c == "status")]
    pool = prefer or free
    k = 1 if kind == "search" or len(pool) == 1 else rng.choice((1, 2))
    picked = sorted(rng.sample(sorted(pool), k))
    return picked
