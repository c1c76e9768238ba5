"""The policy's structured markers (s07): parse them and check a policy against its domain.

Size: over 400 lines because the section, mention and rule-marker checks share one parser and must agree on it.

Format::

    <!-- POLICY_START -->
    ## Global Rules
    - ...
    <!-- GLOBAL_RULES_END -->
    <!-- TOOL: cancel_appointment -->
    ... Purpose / Preconditions / Input validation / Permitted / Rejected / Effects ...
    <!-- TOOL_END: cancel_appointment -->
    <!-- POLICY_END -->

What counts as a *mention* of the schema (the rule the unknown-name check uses; it has to
be mechanical so the model can satisfy it):

1. ``Table.column`` (``[A-Z]\\w*`` dot ``[a-z_]\\w*``): in backticks always; in plain text
   only when ``Table`` is a table of the domain (so "Node.js" in prose is not a mention).
   The table must exist and have that column.
2. A backticked single identifier: PascalCase must be a table (or the domain name);
   lowercase/snake_case must be a column of some table, a tool, a tool parameter, an enum
   value, or a literal (``true``, ``false``, ``null``).
3. Anything else in backticks (IDs like ``PAT-10023``, dates, numbers, phrases) is a value
   and is not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentskiller.models.blueprint import Blueprint
from agentskiller.models.catalog import Entity
from agentskiller.models.policy_rules import RULE_MARKER_RE, PolicyRule, is_conduct, rule_marker

POLICY_START = "<!-- POLICY_START -->"
GLOBAL_RULES_END = "<!-- GLOBAL_RULES_END -->"
POLICY_END = "<!-- POLICY_END -->"
GLOBAL_HEADING = "## Global Rules"

_MARKER_RE = re.compile(r"<!--\s*(POLICY_START|GLOBAL_RULES_END|POLICY_END|TOOL_END|TOOL)\s*(?::\s*([^\s>]+?))?\s*-->")
_BACKTICK_RE = re.compile(r"`([^`\n]+)`")
_DOTTED_RE = re.compile(r"\b([A-Z][A-Za-z0-9]*)\.([a-z_][a-z0-9_]*)\b")
_PASCAL_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_SNAKE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LITERALS = {"true", "false", "null", "none"}
#: the parts every tool section must have (a label at the start of a line, any markdown)
REQUIRED_PARTS = ("purpose", "preconditions", "input validation", "permitted", "rejected", "effects")


def tool_start(name: str) -> str:
    return f"<!-- TOOL: {name} -->"


def tool_end(name: str) -> str:
    return f"<!-- TOOL_END: {name} -->"


@dataclass
class ParsedPolicy:
    global_rules: str = ""
    #: tool -> section text (first occurrence; markers excluded)
    sections: dict[str, str] = field(default_factory=dict)
    #: every section in document order, duplicates included
    order: list[str] = field(default_factory=list)
    #: structural problems (missing/misplaced/unbalanced markers)
    problems: list[str] = field(default_factory=list)

    @property
    def rules(self) -> list[str]:
        """The global rules' text, without their rule markers."""
        return [
            strip_rule_markers(ln.strip()[2:]).strip()
            for ln in self.global_rules.splitlines()
            if ln.strip()[:2] in ("- ", "* ")
        ]


def strip_rule_markers(text: str) -> str:
    """``text`` without its ``<!-- RULE: id -->`` markers (what an assistant is shown)."""
    return re.sub(r"[ \t]*" + RULE_MARKER_RE.pattern, "", text)


def strip_fence(text: str) -> str:
    """A policy sent inside one ```markdown fence -> the policy."""
    t = text.strip()
    m = re.match(r"^```[a-zA-Z]*\n(.*)\n```$", t, re.S)
    return m.group(1) if m else text


def parse_policy(text: str) -> ParsedPolicy:
    p = ParsedPolicy()
    markers = [(m.group(1), m.group(2), m.start(), m.end()) for m in _MARKER_RE.finditer(text)]
    kinds = [k for k, *_ in markers]
    for k in ("POLICY_START", "GLOBAL_RULES_END", "POLICY_END"):
        n = kinds.count(k)
        if n != 1:
            p.problems.append(f"the policy must contain the marker <!-- {k} --> exactly once (found {n})")
    pos = {k: s for k, _, s, _ in markers if k in ("POLICY_START", "GLOBAL_RULES_END", "POLICY_END")}
    if "POLICY_START" in pos and "GLOBAL_RULES_END" in pos:
        start_end = next(e for k, _, _, e in markers if k == "POLICY_START")
        p.global_rules = text[start_end : pos["GLOBAL_RULES_END"]].strip()
        if pos["GLOBAL_RULES_END"] < pos["POLICY_START"]:
            p.problems.append("<!-- GLOBAL_RULES_END --> comes before <!-- POLICY_START -->")
        elif GLOBAL_HEADING.lower() not in p.global_rules.lower():
            p.problems.append(f"the global rules must start with the heading '{GLOBAL_HEADING}'")
        elif not p.rules:
            p.problems.append("the Global Rules section has no rules (bullet lines '- ...')")
    open_name: str | None = None
    open_at = 0
    for kind, name, s, e in markers:
        if kind == "TOOL":
            if open_name is not None:
                p.problems.append(
                    f"section {open_name} is not closed (<!-- TOOL_END: {open_name} -->) before section {name} starts"
                )
            if "GLOBAL_RULES_END" in pos and s < pos["GLOBAL_RULES_END"]:
                p.problems.append(f"section {name} starts inside the global rules")
            if "POLICY_END" in pos and s > pos["POLICY_END"]:
                p.problems.append(f"section {name} comes after <!-- POLICY_END -->")
            open_name, open_at = name, e
        elif kind == "TOOL_END":
            if open_name is None:
                p.problems.append(f"<!-- TOOL_END: {name} --> without a matching <!-- TOOL: {name} -->")
            elif name != open_name:
                p.problems.append(f"section {open_name} is closed by <!-- TOOL_END: {name} -->")
            else:
                p.order.append(name)
                p.sections.setdefault(name, text[open_at:s].strip())
            open_name = None
        elif open_name is not None:
            p.problems.append(f"section {open_name} is not closed before <!-- {kind} -->")
            open_name = None
    if open_name is not None:
        p.problems.append(f"section {open_name} is not closed (<!-- TOOL_END: {open_name} -->)")
    return p


# ------------------------------------------------------------------------ the schema
def _spell(value: Any) -> str:
    """A value as the data spells it: strings as is, others as JSON (`true`, `3`)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class PolicySchema:
    """The names a policy may use: tables and their columns, tools, parameters, enum values."""

    domain: str
    tables: dict[str, set[str]]
    tools: list[str]
    parameters: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)

    @classmethod
    def from_blueprint(cls, bp: Blueprint, entities: dict[str, Entity], summary: dict | None = None) -> PolicySchema:
        """Columns come from the data summary when there is one (the data is the truth),
        else from the entity and relationship definitions."""
        tables: dict[str, set[str]] = {}
        values: set[str] = set()
        stables = (summary or {}).get("tables") or {}
        for name in bp.tables:
            if name in stables:
                tables[name] = set(stables[name].get("columns", {}))
                for col in stables[name].get("columns", {}).values():
                    values.update(str(v) for v in col.get("values", []) if isinstance(v, str))
            elif name in entities:
                tables[name] = {a.name for a in entities[name].attributes}
            elif bp.relationship(name) is not None:
                tables[name] = {c.name for c in bp.relationship(name).columns}
        for name in bp.entities:
            for a in entities[name].attributes if name in entities else []:
                values.update(a.enum or [])
        for rel in bp.relationships:
            for c in rel.columns:
                values.update(c.enum or [])
        params: set[str] = set()
        for t in bp.tools:
            for prm in t.parameters:
                params.add(prm.name)
                values.update(prm.enum or [])
            for cond in t.preconditions:
                values.update(_spell(v) for v in cond.values)
            values.update(_spell(v) for v in t.effects.values())
        return cls(domain=bp.domain, tables=tables, tools=[t.name for t in bp.tools], parameters=params, values=values)

    @property
    def columns(self) -> set[str]:
        return set().union(*self.tables.values()) if self.tables else set()


def find_mentions(text: str, schema: PolicySchema) -> list[str]:
    """Names the policy uses that the domain does not have (one line each, deduplicated)."""
    text = _MARKER_RE.sub(" ", text)
    bad: dict[str, str] = {}
    columns = schema.columns
    for m in _BACKTICK_RE.finditer(text):
        tok = m.group(1).strip()
        dm = re.fullmatch(r"([A-Z][A-Za-z0-9]*)\.([a-z_][a-z0-9_]*)", tok)
        if dm:
            _dotted(dm.group(1), dm.group(2), schema, bad)
        elif _PASCAL_RE.fullmatch(tok):
            if tok not in schema.tables and tok != schema.domain:
                bad.setdefault(tok, f"unknown table `{tok}` mentioned; the tables are {sorted(schema.tables)}")
        elif _SNAKE_RE.fullmatch(tok):
            if not (
                tok in columns
                or tok in schema.tools
                or tok in schema.parameters
                or tok in schema.values
                or tok in _LITERALS
            ):
                bad.setdefault(
                    tok,
                    f"unknown column or value `{tok}` mentioned: it is not a column, tool, "
                    f"parameter or enum value of this domain; use only names from the schema",
                )
    plain = _BACKTICK_RE.sub(" ", text)
    for m in _DOTTED_RE.finditer(plain):
        if m.group(1) in schema.tables:
            _dotted(m.group(1), m.group(2), schema, bad)
    return list(bad.values())


def _dotted(table: str, column: str, schema: PolicySchema, bad: dict[str, str]) -> None:
    key = f"{table}.{column}"
    if table not in schema.tables:
        bad.setdefault(key, f"unknown table in `{key}`: the tables are {sorted(schema.tables)}")
    elif column not in schema.tables[table]:
        bad.setdefault(key, f"unknown column `{key}`: {table} has the columns {sorted(schema.tables[table])}")


def _has_part(section: str, part: str) -> bool:
    return re.search(rf"(?im)^[\s>*_#\-]*{re.escape(part)}\b", section) is not None


def check_policy(text: str, schema: PolicySchema, rules: list[PolicyRule] | None = None) -> list[str]:
    """Every problem of ``text`` as a policy for the domain of ``schema`` (empty: accepted);
    with ``rules``, also that the policy states each rule, marked, and nothing unmarked."""
    p = parse_policy(text)
    errors = list(p.problems)
    counts: dict[str, int] = {}
    for name in p.order:
        counts[name] = counts.get(name, 0) + 1
    for tool in schema.tools:
        if tool not in counts:
            errors.append(f"missing section for tool `{tool}`: add {tool_start(tool)} ... {tool_end(tool)}")
        elif counts[tool] > 1:
            errors.append(f"tool `{tool}` has {counts[tool]} sections; keep exactly one")
    for name in counts:
        if name not in schema.tools:
            errors.append(f"section for unknown tool `{name}` (not a tool of this domain): remove it")
    for tool in schema.tools:
        sec = p.sections.get(tool)
        if sec is None:
            continue
        missing = [part for part in REQUIRED_PARTS if not _has_part(sec, part)]
        if missing:
            errors.append(f"section `{tool}` lacks the part(s) {missing} (each as a label at the start of a line)")
    errors += find_mentions(text, schema)
    if rules is not None and not p.problems:
        errors += check_rules(p, rules)
    return errors


# ------------------------------------------------------------------------ rule markers
#: phrases that state a rule of a kind; a line that uses one must carry a marker of that kind
RULE_PHRASES = {
    "time": ("after the current time", "before the current time"),
    "not_empty": ("must not be empty",),
    "exists": ("must identify an existing",),
    "at_least_one": ("at least one value",),
    "window": ("check-in opens", "check in opens"),
}


def _bullets(block: str) -> list[str]:
    return [ln.strip() for ln in block.splitlines() if ln.strip()[:2] in ("- ", "* ")]


def stated_rules(text: str | ParsedPolicy) -> dict[str, tuple[str | None, str]]:
    """rule id -> (the tool section it stands in, None for the global rules; its line)."""
    p = parse_policy(text) if isinstance(text, str) else text
    out: dict[str, tuple[str | None, str]] = {}
    for where, block in [(None, p.global_rules), *p.sections.items()]:
        for line in block.splitlines():
            for m in RULE_MARKER_RE.finditer(line):
                out.setdefault(m.group(1), (where, line.strip()))
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def statement_problems(rule: PolicyRule, line: str, auth_tool: str) -> list[str]:
    """What the line of ``rule``'s marker fails to say (empty: it states the rule)."""
    low = strip_rule_markers(line).lower()
    need: list[str] = []
    if rule.param and rule.kind != "covers" and f"`{rule.param}`".lower() not in low:
        need.append(f"the parameter `{rule.param}`")
    k = rule.kind
    if k == "authorization" and "authoriz" not in low:
        need.append("that the user must be authorized")
    elif k == "exists" and not ("existing" in low and f"`{rule.table}`".lower() in low):
        need.append(f"that it must identify an existing `{rule.table}` record")
    elif k == "ownership" and not (f"`{rule.table}".lower() in low and ("belong" in low or "own" in low)):
        need.append(f"that the `{rule.table}` record must belong to the authorized user")
    elif k == "enum":
        need += [f"the value `{v}`" for v in rule.values or [] if f"`{v}`".lower() not in low]
    elif k == "range":
        need += [f"the bound {_fmt(b)}" for b in (rule.minimum, rule.maximum) if b is not None and _fmt(b) not in low]
    elif k == "format":
        shape = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-ddthh:mm:ss", "email": "email", "phone": "phone"}
        if shape[rule.format or "date"] not in low:
            need.append(f"the {rule.format} format ({shape[rule.format or 'date'].upper()})")
    elif k == "not_empty" and "empty" not in low:
        need.append("that it must not be empty")
    elif k == "time":
        phrase = "after the current time" if rule.when == "future" else "before the current time"
        if phrase not in low:
            need.append(f"that it must lie {phrase}")
    elif k == "bound" and f"`{rule.limit}`".lower() not in low:
        need.append(f"that it may not exceed `{rule.limit}` of the referenced record")
    elif k == "precondition":
        for c in rule.conditions or []:
            if c["column"].lower() not in low:
                need.append(f"the column `{rule.table}.{c['column']}`")
            need += [f"the value `{v}`" for v in c["values"] if f"`{_spell(v)}`".lower() not in low]
    elif k == "window":
        need += _window_problems(rule, low)
    elif k == "at_least_one" and "at least one" not in low:
        need.append("that at least one value to change must be given")
    elif k == "privacy" and "does not exist" not in low:
        need.append("that another person's record is treated exactly like a record that does not exist")
    elif rule.id == "global.authorization" and f"`{auth_tool}`".lower() not in low:
        need.append(f"that `{auth_tool}` comes before any other action")
    return need


def _window_problems(rule: PolicyRule, low: str) -> list[str]:
    """A check-in window line names the time column, the hours and the current time, and says
    when check-in opens ("opens 24 hours before")."""
    need = []
    dotted, bare = f"`{rule.table}.{rule.column}`".lower(), f"`{rule.column}`".lower()
    if dotted not in low and bare not in low:
        need.append(f"the column `{rule.table}.{rule.column}` whose time the check-in window is about")
    hours = _fmt(rule.within_hours or 0)
    if not re.search(rf"(?<![\d.]){re.escape(hours)} hours? before", low):
        need.append(f"that check-in opens {hours} hours before that time")
    if "current time" not in low:
        need.append("that the time must lie between the current time and that many hours after it")
    return need


def check_rules(p: ParsedPolicy, rules: list[PolicyRule]) -> list[str]:
    """The policy states every rule on a line with its marker, in the right place; each marked
    line says what its rule says; no marker names an unknown rule; no rule is stated unmarked."""
    stated = stated_rules(p)
    by_id = {r.id: r for r in rules}
    auth = next((r.tool or "" for r in rules if r.kind == "exists" and _is_auth_rule(r, rules)), "")
    errors: list[str] = []
    for r in rules:
        if r.tool and r.tool not in p.sections:
            continue  # the missing section is reported already
        if r.id not in stated:
            where = f"the section of `{r.tool}`" if r.tool else "the Global Rules"
            errors.append(
                f"rule {r.id} is not stated: add a line to {where} that states it and ends with {rule_marker(r.id)}"
            )
            continue
        section, line = stated[r.id]
        if section != r.tool:
            errors.append(
                f"the marker {rule_marker(r.id)} stands in "
                f"{'the Global Rules' if section is None else f'the section of `{section}`'}; "
                f"it belongs in {'the Global Rules' if r.tool is None else f'the section of `{r.tool}`'}"
            )
            continue
        missing = statement_problems(r, line, auth)
        if missing:
            errors.append(
                f"the line marked {rule_marker(r.id)} does not state its rule: it must name " + "; ".join(missing)
            )
    for rid in stated:
        if rid not in by_id and not is_conduct(rid):
            errors.append(f"the marker {rule_marker(rid)} names no rule of this domain: remove it")
    for line in _bullets(p.global_rules):
        if not RULE_MARKER_RE.search(line):
            errors.append(
                f"the global rule '{strip_rule_markers(line)[2:60]}...' has no marker: end it with the "
                f"marker of the rule it states, or {rule_marker('conduct.<name>')} when it only says "
                "how you behave in the conversation"
            )
    for tool, sec in p.sections.items():
        for line in _bullets(sec):
            kinds = {by_id[m.group(1)].kind for m in RULE_MARKER_RE.finditer(line) if m.group(1) in by_id}
            low = line.lower()
            for kind, phrases in RULE_PHRASES.items():
                if any(ph in low for ph in phrases) and kind not in kinds:
                    errors.append(
                        f"section `{tool}` states a {kind.replace('_', ' ')} rule without its marker: "
                        f"'{strip_rule_markers(line)[2:90]}'; mark it, or drop it if the domain has no "
                        "such rule"
                    )
    return errors


def _is_auth_rule(rule: PolicyRule, rules: list[PolicyRule]) -> bool:
    """The authorize tool's own rule: the only exists rule of a tool without an authorization rule."""
    return not any(r.tool == rule.tool and r.kind == "authorization" for r in rules)


def policy_for_tools(text: str, tools: Iterable[str], with_markers: bool = True) -> str:
    """Global rules + only the sections of ``tools`` (what an assistant needs for a task)."""
    p = parse_policy(text)
    # the rule markers are for the checks, not for the assistant
    rules, sections = strip_rule_markers(p.global_rules), {k: strip_rule_markers(v) for k, v in p.sections.items()}
    parts = [f"{POLICY_START}\n{rules}\n{GLOBAL_RULES_END}" if with_markers else rules]
    for t in tools:
        if t in sections:
            parts.append(f"{tool_start(t)}\n{sections[t]}\n{tool_end(t)}" if with_markers else sections[t])
    if with_markers:
        parts.append(POLICY_END)
    return "\n\n".join(parts) + "\n"


def sections_summary(text: str) -> dict[str, Any]:
    p = parse_policy(text)
    return {"sections": p.order, "global_rules": len(p.rules)}
