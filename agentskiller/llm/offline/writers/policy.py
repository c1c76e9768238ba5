"""The offline s07 policy writer: a service's rule book, section by section, with structured markers.

Used by :mod:`agentskiller.llm.offline.handlers.s07_policy`, which owns the request and the
repair rounds; this module only writes text from the blueprint and the data summary.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..phrasing import camel_words

START, GEND, END = "<!-- POLICY_START -->", "<!-- GLOBAL_RULES_END -->", "<!-- POLICY_END -->"
SECTION_RE = re.compile(r"<!--\s*TOOL:\s*([^\s>]+)\s*-->(.*?)<!--\s*TOOL_END:\s*\1\s*-->", re.S)
FEEDBACK_NAME_RE = re.compile(r"unknown (?:column or value|table|column|table in) `([^`]+)`")

_VERB = {
    "read": "look up",
    "search": "list",
    "create": "add",
    "update": "change",
    "delete": "remove",
    "compute": "calculate",
    "authorize": "verify",
}


def _v(value: Any) -> str:
    """A value as the data spells it (JSON for non-strings: `true`, `3`)."""
    return value if isinstance(value, str) else json.dumps(value)


class PolicyWriter:
    def __init__(self, ctx: dict, rng: Any) -> None:
        self.bp = ctx["blueprint"]
        self.db = ctx.get("database") or {}
        self.now = ctx.get("simulation_time", "")
        self.rng = rng
        self.core = self.bp["core_entity"]
        self.rels = {r["name"]: r for r in self.bp.get("relationships", [])}
        self.core_pk = self._pk(self.core)
        self.auth = next(t for t in self.bp["tools"] if t["kind"] == "authorize")
        self.user = camel_words(self.core)
        #: the rules the step asks the policy to state, each with its marker
        self.rules: list[dict] = list(ctx.get("rules") or [])
        self.rule_ids = {r["id"] for r in self.rules}

    def _rules_of(self, tool: str, param: str | None = None, kinds: tuple[str, ...] = ()) -> list[dict]:
        return [
            r
            for r in self.rules
            if r.get("tool") == tool and r.get("param") == param and (not kinds or r["kind"] in kinds)
        ]

    @staticmethod
    def _marked(text: str, rule_ids: list[str]) -> str:
        return text + "".join(f" <!-- RULE: {rid} -->" for rid in rule_ids)

    def _global_id(self, wanted: str, fallback: str) -> str:
        return wanted if wanted in self.rule_ids else fallback

    # -------------------------------------------------------------- schema lookups
    def _pk(self, table: str) -> str:
        if table in self.db:
            return self.db[table]["primary_key"]
        if table in self.rels:
            return self.rels[table]["primary_key"]
        return re.sub(r"(?<!^)(?=[A-Z])", "_", table).lower() + "_id"

    def _col(self, table: str, column: str) -> dict:
        return ((self.db.get(table) or {}).get("columns") or {}).get(column) or {}

    def _owner_col(self, table: str) -> str | None:
        if table == self.core:
            return self.core_pk
        rel = self.rels.get(table)
        if rel:
            return next((c["name"] for c in rel["columns"] if c.get("references") == self.core), None)
        return None

    def _example_id(self, table: str) -> str | None:
        col = self._col(table, self._pk(table))
        samples = col.get("samples") or []
        return str(samples[0]) if samples else None

    # ----------------------------------------------------------------------- text
    def global_rules(self) -> list[str]:
        """The global rules, each ending with the marker of the rule it states (``conduct.*``
        for the lines on how the assistant behaves, which no tool can enforce)."""
        a, pk = self.auth["name"], self.core_pk
        ex = self._example_id(self.core)
        pick = self.rng.choice
        m = self._marked
        rules = [
            m(
                f"Before any other action, identify the {self.user} with `{a}` using their `{pk}`"
                + (f" (IDs look like `{ex}`)" if ex else "")
                + ". If it fails, say so and do nothing else; "
                "never act for anyone but the authorized " + self.user + ".",
                ["global.authorization"],
            ),
            m(
                pick(
                    [
                        "Authorization lasts for the whole conversation; never ask for it twice.",
                        "Once authorized, the session stays authorized until the conversation ends.",
                    ]
                ),
                ["conduct.session"],
            ),
        ]
        owned = [t for t in self.rels if self._owner_col(t)]
        if owned:
            own = "; ".join(
                f"{'an' if t[0] in 'AEIOU' else 'a'} `{t}` record belongs to them when its `{t}.{self._owner_col(t)}` equals their "
                f"`{pk}`"
                for t in owned
            )
            privacy = "global.privacy" in self.rule_ids
            rules.append(
                m(
                    f"The {self.user} may only see and change their own records: {own}."
                    + (" Treat another person's record exactly like a record that does not exist." if privacy else ""),
                    ["global.privacy" if privacy else "conduct.own_records"],
                )
            )
        rules.append(
            m(
                f"The current time is {self.now}. Use it for every judgement about past and future; never "
                "assume any other date.",
                ["conduct.clock"],
            )
        )
        rules.append(
            m(
                pick(
                    [
                        "Before any change to the data (creating, changing or removing a record), list the "
                        "action and every value it will use, and go ahead only after the user explicitly "
                        "confirms (yes).",
                        "Every action that changes data needs the user's explicit confirmation (yes) after you "
                        "have described exactly what will change.",
                    ]
                ),
                ["conduct.confirm"],
            )
        )
        rules.append(
            m(
                "Use only values the data allows: enumerated fields accept exactly the listed values, numbers "
                "must lie within the stated ranges, and an ID must be one the user gave or a tool returned. "
                "Never guess or invent an ID, a date or a price.",
                [self._global_id("global.values", "conduct.values")],
            )
        )
        rules.append(
            m(
                pick(
                    [
                        "Make one tool call at a time and report its outcome before the next.",
                        "Call one tool at a time and wait for its result.",
                    ]
                ),
                ["conduct.one_call"],
            )
        )
        rules.append(
            m(
                "Refuse requests that no tool supports or that this policy forbids, and explain which rule "
                "applies; do not offer workarounds.",
                ["conduct.refuse"],
            )
        )
        return rules

    def _param_rule(self, tool: dict, p: dict) -> str:
        """One input-validation line: the parameter, then every rule it carries, each phrase
        in the order of the rules and the line ending with their markers."""
        req = "required" if p.get("required", True) else "optional"
        s = f"`{p['name']}` ({p['type']}, {req})"
        phrases: list[str] = []
        rules = self._rules_of(tool["name"], p["name"])
        for r in rules:
            k = r["kind"]
            if k == "enum":
                phrases.append("one of " + ", ".join(f"`{_v(v)}`" for v in r["values"]))
            elif k == "range":
                lo, hi = r.get("minimum"), r.get("maximum")
                phrases.append(
                    f"between {lo:g} and {hi:g}"
                    if lo is not None and hi is not None
                    else (f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
                )
            elif k == "format":
                phrases.append(
                    {
                        "date": "a date written YYYY-MM-DD",
                        "datetime": "a date and time in ISO 8601 (YYYY-MM-DDTHH:MM:SSZ)",
                        "email": "an email address such as name@example.com",
                        "phone": "a phone number of digits, spaces, dashes and an optional leading +",
                    }[r["format"]]
                )
            elif k == "exists":
                phrases.append(f"it must identify an existing `{r['table']}` record")
            elif k == "not_empty":
                phrases.append(self.rng.choice(["it must not be empty", "it must not be empty or blank"]))
            elif k == "time":
                side = "after" if r["when"] == "future" else "before"
                phrases.append(f"it must lie {side} the current time ({self.now})")
            elif k == "bound":
                entity = r["limit"].split(".")[0]
                phrases.append(f"it may not exceed `{r['limit']}` of the chosen `{entity}`")
        if phrases:
            s += ": " + "; ".join(phrases)
        return self._marked(s + ".", [r["id"] for r in rules])

    def _window_line(self, r: dict) -> str:
        """The check-in window in plain words: when it opens, and that it closes at the time
        itself (a date counts as its whole day)."""
        col, hours = f"`{r['table']}.{r['column']}`", f"{r['within_hours']:g} hours"
        if self._is_date_column(r["table"], r["column"]):
            return (
                f"Check-in opens {hours} before the day in {col} (the whole day counts): that day must fall "
                f"between the current time ({self.now}) and {hours} after it, today included; an earlier "
                "check-in, or one after that day, is refused."
            )
        return (
            f"Check-in opens {hours} before {col}: that time must lie between the current time ({self.now}) and "
            f"{hours} after it; an earlier check-in, or one once that time has passed, is refused."
        )

    def _is_date_column(self, table: str, column: str) -> bool:
        rel = self.rels.get(table) or {}
        return any(c["name"] == column and c.get("type") == "date" for c in rel.get("columns", []))

    def section(self, tool: dict) -> str:
        name, kind, table = tool["name"], tool["kind"], tool["table"]
        owner = self._owner_col(table)
        lines = [f"### {name}", "", f"**Purpose:** {tool['description'].rstrip('.')}."]
        pre: list[str] = []
        if kind == "authorize":
            pre.append("None: this is the first call of every conversation.")
        elif tool.get("requires_auth", True):
            pre.append(
                self._marked(
                    f"The {self.user} has been authorized with `{self.auth['name']}`.",
                    [r["id"] for r in self._rules_of(name, kinds=("authorization",))],
                )
            )
        else:
            pre.append("No authorization is needed; the information is public.")
        owns = [r["id"] for r in self._rules_of(name, kinds=("ownership",))]
        if kind in ("read", "update", "delete") and owner and table in self.rels:
            pre.append(
                self._marked(f"The `{table}` record belongs to the authorized {self.user} (`{table}.{owner}`).", owns)
            )
        elif kind in ("read", "update", "delete") and table == self.core:
            pre.append(self._marked(f"Only the authorized {self.user}'s own `{table}` record may be used.", owns))
        conds = [
            f"`{table}.{c['column']}` is {'one of ' if len(c['values']) > 1 else ''}"
            + ", ".join(f"`{_v(v)}`" for v in c["values"])
            for c in tool.get("preconditions", [])
        ]
        if conds:
            pre.append(
                self._marked("; ".join(conds) + ".", [r["id"] for r in self._rules_of(name, kinds=("precondition",))])
            )
        windows = self._rules_of(name, kinds=("window",))
        pre += [self._marked(self._window_line(r), [r["id"]]) for r in windows]
        if kind in ("create", "update", "delete"):
            # the assistant's conduct, stated again where it applies; no tool can check it
            pre.append(self._marked("The user has confirmed the change after you described it.", ["conduct.confirm"]))
        lines += ["", "**Preconditions:**", *[f"- {x}" for x in pre]]
        params = tool.get("parameters", [])
        lines += ["", "**Input validation:**"]
        lines += [f"- {self._param_rule(tool, p)}" for p in params] or ["- The tool takes no input."]
        at_least_one = self._rules_of(name, kinds=("at_least_one",))
        if at_least_one:
            lines.append(self._marked("- At least one value to change must be given.", [r["id"] for r in at_least_one]))
        lines += ["", "**Outcomes:**"]
        permitted = {
            "authorize": f"Permitted: the `{self.core_pk}` belongs to an existing `{self.core}`; the session is "
            f"bound to that {self.user}.",
            "read": f"Permitted: every precondition holds; the `{table}` record is returned.",
            "search": f"Permitted: the matching `{table}` records are returned (at most 50, ordered by "
            f"`{self._pk(table)}`)" + (f", only the {self.user}'s own." if owner and table in self.rels else "."),
            "create": f"Permitted: every precondition and validation holds; a new `{table}` record is created.",
            "update": f"Permitted: every precondition and validation holds; the `{table}` record is changed.",
            "delete": f"Permitted: every precondition holds; the `{table}` record is removed.",
            "compute": f"Permitted: the {tool.get('aggregate') or 'count'} over the {self.user}'s `{table}` records "
            "is returned with the number of records used.",
        }[kind]
        rejected = ["the input fails validation"]
        if kind == "authorize":
            rejected = [f"no `{self.core}` has that `{self.core_pk}`"]
        else:
            if tool.get("requires_auth", True):
                rejected.insert(0, f"the {self.user} is not authorized")
            if kind in ("read", "update", "delete"):
                rejected.append(
                    f"the `{table}` record does not exist"
                    + (" or belongs to someone else" if owner and table in self.rels else "")
                )
            for cond in tool.get("preconditions", []):
                rejected.append(
                    f"`{table}.{cond['column']}` is not " + " or ".join(f"`{_v(v)}`" for v in cond["values"])
                )
            for r in windows:
                rejected.append(
                    f"`{r['table']}.{r['column']}` is more than {r['within_hours']:g} hours away or has already passed"
                )
            if kind in ("create", "update", "delete"):
                rejected.append("the user did not confirm")
        lines += [
            f"- {permitted}",
            "- Rejected when " + "; ".join(rejected) + ". Explain the reason and change nothing.",
        ]
        lines += ["", "**Effects:**"]
        if kind in ("read", "search", "compute"):
            lines.append("- None: the tool only reads data.")
        elif kind == "authorize":
            lines.append(f"- The session is bound to the {self.user}; no data changes.")
        elif kind == "create":
            lines.append(
                f"- A new `{table}` record with a new `{self._pk(table)}`"
                + (f", `{owner}` set to the authorized {self.user}" if owner else "")
                + "".join(
                    f", `{p['column']}` from `{p['name']}`"
                    for p in params
                    if p.get("column") and p["column"] not in (owner, self._pk(table))
                )
                + "".join(f", `{k}` set to `{_v(v)}`" for k, v in tool.get("effects", {}).items())
                + "."
            )
        elif kind == "update":
            sets = [
                f"`{p['column']}` from `{p['name']}`"
                for p in params
                if p.get("column") and p["column"] != self._pk(table)
            ]
            sets += [f"`{k}` set to `{_v(v)}`" for k, v in tool.get("effects", {}).items()]
            lines.append(
                f"- The `{table}` record gets " + (", ".join(sets) or "the given values") + "; nothing else changes."
            )
        elif kind == "delete":
            lines.append(f"- The `{table}` record is removed permanently.")
        return "\n".join(lines)

    def policy(self, sections: dict[str, str] | None = None, rules: list[str] | None = None) -> str:
        bp = self.bp
        head = [
            START,
            f"# {bp['domain']} service policy",
            "",
            f"You are the assistant of {bp['domain']}: {bp['description'].rstrip('.')}. You talk to one "
            f"{self.user} per conversation and act only through the tools below.",
            "",
            "## Global Rules",
            "",
        ]
        head += [f"- {r}" for r in (rules or self.global_rules())]
        body = [GEND, ""]
        for t in bp["tools"]:
            sec = (sections or {}).get(t["name"]) or self.section(t)
            body += [f"<!-- TOOL: {t['name']} -->", sec.strip(), f"<!-- TOOL_END: {t['name']} -->", ""]
        return "\n".join(head + [""] + body + [END]) + "\n"
