"""Offline answer for s11: cross-domain storylines from the two members' feasible segments.

Context (from :mod:`agentskiller.steps.cross.s11_trajectory_fusion`): ``pair``, ``core_entity``,
``max_length``, ``target_count`` and per member its namespaced tools (kind, table,
description), tool-graph edges, preconditions and ``segments`` (feasible sequences from the
authorization tool, validated ones first).

Composition: a segment of one member followed by a segment of the other, in both orders,
validated segments first; a segment is shortened to a prefix when the pair would exceed
``max_length`` (a prefix of a graph path is a path, and preconditions only look back).
Pairs are taken round-robin so different segments of each member appear early. The
storyline is written from what the segments do: "The patient books a new dental
appointment at DentalCareDesk; then, signed in with the same patient ID, requests a new
pharmacist consultation at PharmacyCareLine." Phrasing varies with the request's RNG.

Repair rounds (``req.feedback``): feedback lines name trajectories by index
(``"3: trajectory [...]: ..."``); the previous answer (the last assistant message) is kept
except those trajectories, which are fixed where the fix is mechanical (each member's calls
reordered so its authorization comes first, repeated tools dropped) and dropped otherwise.
An unreadable previous answer is composed afresh.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import handler
from ..phrasing import camel_words
from ..provider import OfflineRequest

NS = "__"
_INDEX_RE = re.compile(r"^(\d+): ")

_VERB3 = {
    "get": "looks up",
    "list": "lists",
    "search": "searches for",
    "count": "counts",
    "total": "totals",
    "check": "checks",
    "fetch": "fetches",
    "show": "shows",
}
_CONNECT = [
    "then, signed in with the same {key},",
    "and afterwards, as the same {core},",
    "and right after that, using the same {key},",
    "then, still as the same {core},",
]


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\s]+", name) if w]


def _third_person(verb: str) -> str:
    if verb in _VERB3:
        return _VERB3[verb]
    if re.search(r"(s|sh|ch|x|z)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def phrase(tool: dict, mentioned: set[str] | None = None) -> str:
    """What a tool does, as a verb phrase in the third person ("books a new dental
    appointment"); a record already ``mentioned`` in the storyline becomes "it"."""
    mentioned = mentioned if mentioned is not None else set()
    bare = tool["name"].split(NS, 1)[-1]
    words = _words(bare)
    label = camel_words(tool["table"])
    lwords = set(label.split()) | {w + "s" for w in label.split()}
    verb = list(words)
    while len(verb) > 1 and verb[-1] in lwords | {"my", "details"}:
        verb.pop()
    head = _third_person(verb[0]) + ("" if len(verb) == 1 else " " + " ".join(verb[1:]))
    kind, owned = tool["kind"], tool.get("owned", True)
    seen = label in mentioned
    if kind not in ("search", "compute"):  # "lists their fills, looks it up" would not say which
        mentioned.add(label)
    their = "their" if owned else "the"
    if kind == "create":
        return f"{head} a new {label}"
    if kind in ("update", "delete"):
        return f"{head} it" if seen else f"{head} {their} {label}"
    if kind == "search":
        return f"{head} {their if owned else ''} {label}s".replace("  ", " ")
    if kind == "compute":
        return f"{head} {their} {label}s"
    if kind == "read":
        if seen:
            return "looks it up" if head == "looks up" else f"{head} it"
        return f"{head} {their} {label}" + (" details" if "details" in words else "")
    return f"{head} {label}"


#: why the second service follows, by what the second segment finally does
_MOTIVE = {
    "create": ["to arrange what comes next", "so that everything is set up in one go", "while they are at it"],
    "update": ["because the first step changes their plans there too", "to keep both services in line"],
    "delete": ["because the first step makes it unnecessary", "to tidy up what is no longer needed"],
    "read": ["to make sure everything lines up", "to check how things stand there"],
    "search": ["to see what else applies to them", "to check their options there"],
    "compute": ["to see where things stand overall", "to get the full picture"],
}


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class _Composer:
    def __init__(self, ctx: dict, rng: Any) -> None:
        self.ctx = ctx
        self.rng = rng
        self.members = ctx["members"]
        self.max_len = int(ctx.get("max_length", 6))
        self.target = int(ctx.get("target_count", 12))
        self.core = camel_words(ctx.get("core_entity", "customer"))
        self.key = self.core + " ID"
        self.tools = {t["name"]: t for m in self.members for t in m["tools"]}

    def storyline(self, first: list[str], second: list[str]) -> str:
        def part(seg: list[str]) -> tuple[str, str, str]:
            dom = seg[0].split(NS, 1)[0]
            mentioned: set[str] = set()
            acts = [phrase(self.tools[t], mentioned) for t in seg[1:] if t in self.tools]
            last = self.tools.get(seg[-1], {}).get("kind", "read")
            return _join(acts or ["signs in"]), dom, last

        a, da, _ = part(first)
        b, db, kind = part(second)
        conn = self.rng.choice(_CONNECT).format(core=self.core, key=self.key)
        motive = self.rng.choice(_MOTIVE.get(kind, _MOTIVE["read"]))
        return f"The {self.core} {a} at {da}; {conn} {b} at {db} {motive}."

    # ------------------------------------------------------------ links
    def links(self, first: list[str], second: list[str]) -> list[dict]:
        """The hand-overs from ``first`` (one member's calls) to ``second`` (the other's), one
        per fed parameter, from the context's typed ``linkable`` list (the same field name
        first, then the closest words)."""
        out: list[dict] = []
        fed: set[tuple[str, str]] = set()
        cands = [c for c in self.ctx.get("linkable") or [] if c["from"]["call"] in first and c["to"]["call"] in second]

        def affinity(c: dict) -> tuple:
            f, p = c["from"]["field"], c["to"]["param"]
            shared = set(_words(f)) & set(_words(p))
            return (f != p, -len(shared), first.index(c["from"]["call"]), f, p)

        for c in sorted(cands, key=affinity):
            key = (c["to"]["call"], c["to"]["param"])
            f, p = c["from"]["field"], c["to"]["param"]
            # a name hands over only to a parameter that names the same kind of thing
            if c["from"]["category"] == "name" and not (set(_words(f)) & set(_words(p)) - {"name"}):
                continue
            # one hand-over per call: a ride gets the hotel's address as its drop-off, not as
            # its pick-up too
            if key in fed or key[0] in {k[0] for k in fed} or self._stated(first, c["from"]["call"], f):
                continue
            fed.add(key)
            out.append(
                {
                    "from": {"call": c["from"]["call"], "field": f},
                    "to": {"call": c["to"]["call"], "param": p},
                    "relation": "equal",
                }
            )
        return out

    def _stated(self, first: list[str], src: str, field: str) -> bool:
        """The user gives the value themselves (an argument of the source call or of an
        earlier write of that record): nothing would be carried across."""
        table = self.tools.get(src, {}).get("table")
        for t in first:  # also a later write of that record: the value read would be stale
            tool = self.tools.get(t, {})
            if (t == src or (tool.get("kind") in ("create", "update") and tool.get("table") == table)) and field in (
                tool.get("parameters") or []
            ):
                return True
        return False

    def linked_storyline(self, first: list[str], second: list[str], links: list[dict]) -> str:
        """What the person does, and which value of the first service the second one needs."""
        base = self.storyline(first, second).rstrip(".")
        lk = links[0]
        src = self.tools.get(lk["from"]["call"], {})
        dst = self.tools.get(lk["to"]["call"], {})
        what = camel_words(src.get("table", "record"))
        field = lk["from"]["field"].replace("_", " ")
        param = lk["to"]["param"].replace("_", " ")
        dom_b = lk["to"]["call"].split(NS, 1)[0]
        target = camel_words(dst.get("table", "record"))
        cat = next(
            (c["from"]["category"] for c in self.ctx.get("linkable") or [] if c["from"]["call"] == lk["from"]["call"]),
            "",
        )
        how = {
            "datetime": f"for the same time as that {what}",
            "date": f"for the same day as that {what}",
            "address": f"with the {what}'s {field} as its {param}",
            "amount": f"for the same amount as that {what}'s {field}",
        }.get(cat, f"with the {what}'s {field} as its {param}")
        conn = self.rng.choice(
            [
                f"; the {target} at {dom_b} is set {how}, a value the {self.core} only learns from the first service",
                f"; the {target} is arranged {how}, so {dom_b} gets a value carried over from the first service",
            ]
        )
        return f"{base}{conn}."

    def compose(self) -> list[dict]:
        ma, mb = self.members
        segs = {m["domain"]: [s["tools"] for s in m["segments"] if len(s["tools"]) >= 2] for m in (ma, mb)}
        out: list[dict] = []
        seen: set[tuple[str, ...]] = set()
        want = max(2 * self.target, 2)
        orders = []
        for first, second in ((ma, mb), (mb, ma)):
            s1, s2 = segs[first["domain"]], segs[second["domain"]]
            # by i + j, so early output mixes different segments of both members
            orders.append(
                [
                    (s1[i], s2[j])
                    for i, j in sorted(
                        ((i, j) for i in range(len(s1)) for j in range(len(s2))), key=lambda p: (p[0] + p[1], p)
                    )
                ]
            )
        # alternate the two orders (A then B, B then A)
        for k in range(max(len(o) for o in orders) if orders else 0):
            for o in orders:
                if k >= len(o):
                    continue
                a, b = list(o[k][0]), list(o[k][1])
                while len(a) + len(b) > self.max_len and (len(a) > 2 or len(b) > 2):
                    (a if len(a) >= len(b) else b).pop()
                if len(a) + len(b) > self.max_len or tuple(a + b) in seen:
                    continue
                seen.add(tuple(a + b))
                links = self.links(a, b)
                if not links:
                    continue  # nothing to carry across: two stories side by side, not one
                out.append({"tools": a + b, "storyline": self.linked_storyline(a, b, links), "links": links})
                if len(out) >= want:
                    return out
        return out

    def repair(self, previous: dict, feedback: list[str]) -> list[dict]:
        bad = {int(m.group(1)) for f in feedback if (m := _INDEX_RE.match(f))}
        general = [f for f in feedback if not _INDEX_RE.match(f)]
        items = previous.get("trajectories") or []
        out: list[dict] = []
        for i, item in enumerate(items):
            if i not in bad:
                out.append(item)
                continue
            fixed = self.fix(item.get("tools") or [])
            # a fix that changes nothing cannot help (e.g. an infeasible segment): drop it
            if fixed and fixed != item.get("tools") and not any(o["tools"] == fixed for o in out):
                first, second = self._halves(fixed)
                links = self.links(first, second)
                if links:
                    out.append({"tools": fixed, "storyline": item.get("storyline") or "", "links": links})
        if not out or general:
            out += [c for c in self.compose() if not any(o["tools"] == c["tools"] for o in out)]
        # a fixed trajectory whose storyline went missing gets one written for it
        for o in out:
            if not str(o.get("storyline", "")).strip():
                o["storyline"] = self.storyline(*self._halves(o["tools"]))
        return out

    def _halves(self, tools: list[str]) -> tuple[list[str], list[str]]:
        dom = tools[0].split(NS, 1)[0]
        return [t for t in tools if t.startswith(dom + NS)], [t for t in tools if not t.startswith(dom + NS)]

    def fix(self, tools: list[str]) -> list[str] | None:
        """Each member's calls regrouped with its authorization first; None if not mechanical."""
        known = [t for i, t in enumerate(tools) if t in self.tools and t not in tools[:i]]
        groups: list[list[str]] = []
        for m in self.members:
            auth = m["authorize_tool"]
            own = [t for t in known if t.startswith(m["domain"] + NS)]
            if auth not in own or len(own) < 2:
                return None
            groups.append([auth] + [t for t in own if t != auth])
        order = sorted(groups, key=lambda g: min(known.index(t) for t in g if t != g[0]))
        out = order[0] + order[1]
        if len(out) > self.max_len:
            return None
        for m, g in zip(self.members, groups):
            edges = {tuple(e) for e in m["edges"]}
            pre = m.get("preconditions") or {}
            if any((a, b) not in edges for a, b in zip(g, g[1:])) or any(
                p not in g[: g.index(t)] for t in g for p in pre.get(t, [])
            ):
                return None
        return out


@handler("s11.fusion")
def fusion(req: OfflineRequest) -> dict:
    c = _Composer(req.context, req.rng)
    if req.feedback:
        previous = next((m["content"] for m in reversed(req.messages) if m.get("role") == "assistant"), "")
        try:
            prev = json.loads(previous)
        except ValueError:
            prev = None
        if isinstance(prev, dict):
            return {"trajectories": c.repair(prev, req.feedback)}
    return {"trajectories": c.compose()}
