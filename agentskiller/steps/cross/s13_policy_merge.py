"""s13 policy merge: the pair's policy = both member policies kept whole + checkable Bridge Rules.

Size: over 400 lines because namespacing the member policies and checking the Bridge Rules share one policy parser.

Member policies (s07) passed their own checks; they are not re-written by a model (the
original asked the model to re-emit both policies, which loses or duplicates sections and
was never checked). Instead, in code:

* every member tool is renamed to its namespaced name ``<Domain>__<tool>`` (section markers,
  headings and mentions), and every relationship table to its fused name
  ``<Domain>_<Relationship>`` (s12's namespace; entity tables are shared and keep their
  names). Compound names (``book_appointment``, ``DentalAppointment``) are rewritten
  wherever they stand as a word; one-word names only where they are unambiguously names (in
  backticks, ``Table.column``, markers and headings), so prose is not mangled;
* each member's global rules become a subsection of the merged ``## Global Rules``.

The Bridge Rules are data (:mod:`agentskiller.models.bridge_rules`: identity, each member's
own authorization, separation, and ordering where the fused trajectories declare links);
the text model (task ``s13.bridge_rules``) only states them, in a ``## Bridge Rules``
section between ``<!-- BRIDGE_RULES_START -->`` and ``<!-- BRIDGE_RULES_END -->``: one
bullet per rule, labelled with its kind (Identity, Authorization, Separation, Ordering) and
ending with the rule's marker ``<!-- RULE: bridge.<id> -->``, like a member policy's rules.
Checked in code, problems fed back (``policy.max_repair_rounds``): the markers parse, every
derived rule is stated exactly once, a bullet without a marker or with one the pair server
does not enforce (a text-only rule) is refused, the label matches the rule's kind, the
bullet names what its rule is about (both authorization tools and the person's key for
identity, the ordered tools for ordering), and every name it uses exists in the pair
(namespaced tools, shared entity tables, namespaced relationship tables, their columns and
values; a bare member tool or relationship name is an error that says which namespaced
names are meant). The section is placed inside the global rules (before
``<!-- GLOBAL_RULES_END -->``) so that ``policy_for_tools`` - what s14-s17 and the rollout
show an assistant - always carries it. The pair server enforces every marker and proves it
with contract tests (:mod:`.bridge_tests`).

The merged document is parsed again with :mod:`.policy_markers`: structure sound, every
namespaced tool exactly one section with every required part, no bare name left behind.
Outputs ``cross/{pair}/policy.md`` and the report ``cross/{pair}/policy.json``. A failed
member (blueprint or policy) quarantines the pair without an LLM call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agentskiller import artifacts, io
from agentskiller.artifacts import as_paths, load_blueprint, load_entities, upstream_reason
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.blueprint import Blueprint
from agentskiller.models.bridge_rules import BRIDGE_KINDS, derive_bridge_rules
from agentskiller.models.bridge_rules import BridgeRule as DerivedRule
from agentskiller.models.policy_rules import RULE_MARKER_RE
from agentskiller.prompts import render
from agentskiller.steps.domains.policy_markers import (
    GLOBAL_HEADING,
    GLOBAL_RULES_END,
    POLICY_END,
    POLICY_START,
    REQUIRED_PARTS,
    parse_policy,
    strip_fence,
    tool_end,
    tool_start,
)
from agentskiller.steps.repair import checks_failed

SCHEMA = "merged_policy_report"
NS = "__"
PAIR_SEP = "+"
BRIDGE_START = "<!-- BRIDGE_RULES_START -->"
BRIDGE_END = "<!-- BRIDGE_RULES_END -->"
BRIDGE_HEADING = "## Bridge Rules"
KINDS = BRIDGE_KINDS

_BACKTICK_RE = re.compile(r"`([^`\n]+)`")
_KIND_RE = re.compile(
    r"^\s*(?:\*\*|__)?\[?\s*(identity|authorization|separation|ordering)\s*\]?\s*:?\s*(?:\*\*|__)?\s*:?", re.I
)
_LITERALS = {"true", "false", "null", "none"}


def ns_tool(domain: str, tool: str) -> str:
    return f"{domain}{NS}{tool}"


def ns_table(domain: str, table: str, entities: set[str]) -> str:
    """Physical table name in a pair (s12's convention, the same as s10's ``physical_table``):
    entity tables are shared, relationship tables namespaced ``<Domain>_<Relationship>``."""
    return table if table in entities else f"{domain}_{table}"


def _compound(name: str) -> bool:
    """A name that cannot be an ordinary word: snake_case with "_" or PascalCase with two humps."""
    return "_" in name or re.search(r"[a-z0-9][A-Z]", name) is not None


# ------------------------------------------------------------------ namespacing
def namespace_text(text: str, mapping: dict[str, str]) -> str:
    """Rename every mention of the names in ``mapping`` (see the module docstring)."""
    if not mapping:
        return text
    names = sorted(mapping, key=len, reverse=True)
    compound = [n for n in names if _compound(n)]
    simple = [n for n in names if not _compound(n)]

    def alt(ns_: list[str]) -> str:
        return "|".join(re.escape(n) for n in ns_)

    def sub_word(s: str, ns_: list[str]) -> str:
        if not ns_:
            return s
        return re.sub(rf"(?<![A-Za-z0-9_])({alt(ns_)})(?![A-Za-z0-9_])", lambda m: mapping[m.group(1)], s)

    text = sub_word(text, compound)
    if not simple:
        return text
    # one-word names: in backticks, as Table.column, in markers and in headings only
    text = _BACKTICK_RE.sub(lambda m: "`" + sub_word(m.group(1), simple) + "`", text)
    text = re.sub(rf"(?<![A-Za-z0-9_])({alt(simple)})(?=\.[a-z_])", lambda m: mapping[m.group(1)], text)
    text = re.sub(
        rf"(<!--\s*TOOL(?:_END)?\s*:\s*)({alt(simple)})(\s*-->)",
        lambda m: m.group(1) + mapping[m.group(2)] + m.group(3),
        text,
    )
    text = re.sub(rf"(?m)^(#+\s+)({alt(simple)})\s*$", lambda m: m.group(1) + mapping[m.group(2)], text)
    return text


def demote_headings(text: str, levels: int = 2) -> str:
    return re.sub(r"(?m)^(#{1,4})(\s)", lambda m: "#" * min(len(m.group(1)) + levels, 6) + m.group(2), text)


# ------------------------------------------------------------------ the pair's vocabulary
@dataclass
class PairVocabulary:
    """The names a bridge rule may use."""

    domains: list[str]
    core: str
    core_key: str
    tools: set[str]
    authorize: dict[str, str]  # domain -> namespaced authorize tool
    tables: dict[str, set[str]]  # physical table -> known columns
    words: set[str] = field(default_factory=set)  # columns, parameters, enum values
    bare_tools: dict[str, list[str]] = field(default_factory=dict)  # bare -> namespaced
    bare_tables: dict[str, list[str]] = field(default_factory=dict)  # bare relationship -> physical

    @classmethod
    def build(
        cls, bps: list[Blueprint], policies: dict[str, str], entity_columns: dict[str, set[str]] | None = None
    ) -> PairVocabulary:
        entities = set().union(*(set(bp.entities) for bp in bps))
        core = bps[0].core_entity
        tables: dict[str, set[str]] = {e: set((entity_columns or {}).get(e, set())) for e in sorted(entities)}
        for e in entities:
            tables[e].add(re.sub(r"(?<!^)(?=[A-Z])", "_", e).lower() + "_id")
        words: set[str] = set()
        v = cls(
            domains=[bp.domain for bp in bps],
            core=core,
            core_key=re.sub(r"(?<!^)(?=[A-Z])", "_", core).lower() + "_id",
            tools=set(),
            authorize={},
            tables=tables,
        )
        for bp in bps:
            v.authorize[bp.domain] = ns_tool(bp.domain, bp.authorize_tool().name)
            for rel in bp.relationships:
                phys = ns_table(bp.domain, rel.name, entities)
                tables[phys] = {c.name for c in rel.columns}
                v.bare_tables.setdefault(rel.name, []).append(phys)
                for c in rel.columns:
                    words.update(c.enum or [])
            for t in bp.tools:
                v.tools.add(ns_tool(bp.domain, t.name))
                v.bare_tools.setdefault(t.name, []).append(ns_tool(bp.domain, t.name))
                for p in t.parameters:
                    words.add(p.name)
                    words.update(p.enum or [])
                    if p.column and t.table in entities:
                        tables[t.table].add(p.column)
                for cond in t.preconditions:
                    words.update(str(x) for x in cond.values)
                    words.add(cond.column)
                words.update(str(x) for x in t.effects.values())
                words.update(t.effects)
        # what the member policies already use passed s07's schema check against the data:
        # `Entity.column` there is a real column, a backticked snake word a real name
        for text in policies.values():
            for m in re.finditer(
                r"`([A-Z][A-Za-z0-9]*)\.([a-z_][a-z0-9_]*)`|\b([A-Z][A-Za-z0-9]*)\.([a-z_][a-z0-9_]*)\b", text
            ):
                tab, col = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                if tab in entities:
                    tables[tab].add(col)
            for m in _BACKTICK_RE.finditer(text):
                tok = m.group(1).strip()
                if re.fullmatch(r"[a-z][a-z0-9_]*", tok) and tok not in v.bare_tools:
                    words.add(tok)
        v.words = words | set().union(*tables.values())
        return v


# ------------------------------------------------------------------ bridge rules
@dataclass
class BridgeRule:
    kind: str
    text: str
    names: list[str]
    #: the marker's rule id (``bridge.<id>``), None for a text-only bullet
    id: str | None = None


def parse_bridge(text: str) -> tuple[list[BridgeRule], list[str]]:
    """(rules, structural problems) of a Bridge Rules answer."""
    t = strip_fence(text)
    problems: list[str] = []
    ns_, ne = t.count(BRIDGE_START), t.count(BRIDGE_END)
    if ns_ != 1 or ne != 1:
        problems.append(
            f"the section must contain {BRIDGE_START} and {BRIDGE_END} exactly once each (found {ns_} and {ne})"
        )
        return [], problems
    i, j = t.index(BRIDGE_START), t.index(BRIDGE_END)
    if j < i:
        return [], [f"{BRIDGE_END} comes before {BRIDGE_START}"]
    body = t[i + len(BRIDGE_START) : j]
    if BRIDGE_HEADING.lower() not in body.lower():
        problems.append(f"the section must start with the heading '{BRIDGE_HEADING}'")
    rules: list[BridgeRule] = []
    for ln in body.splitlines():
        s = ln.strip()
        if not s.startswith(("- ", "* ")):
            continue
        item = s[2:].strip()
        m = _KIND_RE.match(item)
        if not m:
            problems.append(
                f"rule '{item[:80]}' does not start with its kind label (**Identity:**, **Authorization:**, "
                "**Separation:** or **Ordering:**)"
            )
            continue
        markers = RULE_MARKER_RE.findall(item)
        rest = RULE_MARKER_RE.sub("", item[m.end() :]).strip()
        rules.append(
            BridgeRule(
                kind=m.group(1).lower(),
                text=rest,
                names=[x.strip() for x in _BACKTICK_RE.findall(rest)],
                id=markers[-1] if len(markers) == 1 else None,
            )
        )
        if len(markers) > 1:
            problems.append(f"rule '{rest[:60]}' carries {len(markers)} markers; one rule per bullet")
    if not rules and not problems:
        problems.append("the Bridge Rules section has no rules (bullet lines '- **Kind:** ...')")
    return rules, problems


def check_name(tok: str, v: PairVocabulary) -> str | None:
    """Why ``tok`` (a backticked token of a bridge rule) is not a name of the pair, or None."""
    if NS in tok and re.fullmatch(r"[A-Za-z0-9]+__[a-z][a-z0-9_]*", tok):
        return None if tok in v.tools else f"unknown tool `{tok}`: the pair's tools are {sorted(v.tools)}"
    dm = re.fullmatch(r"([A-Z][A-Za-z0-9_]*)\.([a-z_][a-z0-9_]*)", tok)
    if dm:
        tab, col = dm.groups()
        if tab in v.bare_tables and tab not in v.tables:
            return f"`{tok}`: use the pair's table name {' or '.join(f'`{p}.{col}`' for p in v.bare_tables[tab])}"
        if tab not in v.tables:
            return f"unknown table in `{tok}`: the pair's tables are {sorted(v.tables)}"
        if col not in v.tables[tab]:
            return f"unknown column `{tok}`: {tab} has the columns {sorted(v.tables[tab])}"
        return None
    if re.fullmatch(r"[A-Z][A-Za-z0-9_]*", tok):
        if tok in v.tables or tok in v.domains:
            return None
        if tok in v.bare_tables:
            return f"`{tok}` is ambiguous in the pair: use the table name {' or '.join(f'`{p}`' for p in v.bare_tables[tok])}"
        return f"unknown table `{tok}`: the pair's tables are {sorted(v.tables)}"
    if re.fullmatch(r"[a-z][a-z0-9_]*", tok):
        if tok in v.bare_tools:
            return (
                f"`{tok}` is a bare tool name; in the pair use the namespaced "
                f"{' or '.join(f'`{n}`' for n in v.bare_tools[tok])}"
            )
        if tok in v.words or tok in _LITERALS:
            return None
        return f"unknown name `{tok}`: not a tool, column, parameter or value of the pair"
    return None  # IDs, dates, numbers, phrases: values, not names


def check_bridge(text: str, v: PairVocabulary, derived: list[DerivedRule]) -> list[str]:
    """Every problem of a Bridge Rules answer against the pair's derived rules (empty: accepted)."""
    rules, errors = parse_bridge(text)
    if not rules:
        return errors
    by_id = {r.id: r for r in derived}
    bad: dict[str, str] = {}
    for r in rules:
        for tok in r.names:
            why = check_name(tok, v)
            if why:
                bad.setdefault(tok, why)
    errors += list(bad.values())
    seen: dict[str, int] = {}
    for r in rules:
        if r.id is None:
            errors.append(
                f"rule '{r.text[:60]}' has no marker: a text-only bridge rule is enforced by nobody; state only "
                f"the given rules, each ending with its marker (one of {sorted(by_id)})"
            )
            continue
        want = by_id.get(r.id)
        if want is None:
            errors.append(
                f"rule '{r.text[:60]}' is marked {r.id}, which the pair server does not enforce; the pair's "
                f"rules are {sorted(by_id)}"
            )
            continue
        seen[r.id] = seen.get(r.id, 0) + 1
        if r.kind != want.kind:
            errors.append(f"rule {r.id} is a {want.kind} rule: label it **{want.kind.capitalize()}:**")
        missing = [n for n in want.names if n not in r.names]
        if missing:
            errors.append(f"rule {r.id} must name {', '.join(f'`{n}`' for n in missing)}: {want.statement}")
    for rid, n in seen.items():
        if n > 1:
            errors.append(f"rule {rid} is stated {n} times; state it once")
    for rid, want in by_id.items():
        if rid not in seen:
            errors.append(
                f"rule {rid} is missing: add '- **{want.kind.capitalize()}:** {want.statement} <!-- RULE: {rid} -->'"
            )
    return errors


def bridge_section(text: str) -> str:
    t = strip_fence(text)
    return t[t.index(BRIDGE_START) : t.index(BRIDGE_END) + len(BRIDGE_END)].strip()


# ------------------------------------------------------------------ merge
@dataclass
class MemberPolicy:
    domain: str
    bp: Blueprint
    text: str  # namespaced
    global_block: str  # namespaced, headings demoted
    sections: dict[str, str]  # namespaced tool -> section body


def namespace_member(bp: Blueprint, text: str, entities: set[str]) -> MemberPolicy:
    mapping = {t.name: ns_tool(bp.domain, t.name) for t in bp.tools}
    mapping.update({r.name: ns_table(bp.domain, r.name, entities) for r in bp.relationships})
    out = namespace_text(text, mapping)
    p = parse_policy(out)
    block = p.global_rules
    return MemberPolicy(
        domain=bp.domain,
        bp=bp,
        text=out,
        global_block=demote_headings(block),
        sections={k: p.sections[k] for k in p.order if k in p.sections},
    )


def compose(pair: str, members: list[MemberPolicy], bridge: str) -> str:
    doms = [m.domain for m in members]
    core = members[0].bp.core_entity
    person = re.sub(r"(?<!^)(?=[A-Z])", " ", core).lower()
    head = [
        POLICY_START,
        f"# {' + '.join(doms)} combined service policy",
        "",
        f"You are the assistant of both {' and '.join(doms)}; you talk to one {person} per conversation, "
        f"who is a customer of both services, and act only through the tools below. Tool names are "
        f"`<Service>__<tool>`; each service's rules govern its own tools, and the Bridge Rules say how "
        f"the two services work together.",
        "",
        GLOBAL_HEADING,
        "",
    ]
    for m in members:
        head += [m.global_block.strip(), ""]
    head += [bridge.strip(), GLOBAL_RULES_END, ""]
    body: list[str] = []
    for m in members:
        for name, sec in m.sections.items():
            body += [tool_start(name), sec.strip(), tool_end(name), ""]
    return "\n".join(head + body + [POLICY_END]) + "\n"


def check_merged(text: str, members: list[MemberPolicy]) -> list[str]:
    """Structural check of the merged policy: markers, one complete section per namespaced
    tool, no bare member name left in backticks or markers."""
    p = parse_policy(text)
    errors = list(p.problems)
    want = [ns_tool(m.domain, t.name) for m in members for t in m.bp.tools]
    counts: dict[str, int] = {}
    for n in p.order:
        counts[n] = counts.get(n, 0) + 1
    for t in want:
        if counts.get(t, 0) != 1:
            errors.append(f"tool `{t}` has {counts.get(t, 0)} sections; exactly one is required")
    errors += [f"section for unknown tool `{n}`" for n in counts if n not in want]
    for t in want:
        sec = p.sections.get(t, "")
        missing = [part for part in REQUIRED_PARTS if not re.search(rf"(?im)^[\s>*_#\-]*{re.escape(part)}\b", sec)]
        if sec and missing:
            errors.append(f"section `{t}` lacks the part(s) {missing}")
    bare = {t.name for m in members for t in m.bp.tools} | {r.name for m in members for r in m.bp.relationships}
    left = sorted({tok for tok in _BACKTICK_RE.findall(text) if tok.split(".")[0] in bare})
    if left:
        errors.append(f"bare member names left after namespacing: {left[:10]}")
    if text.count(BRIDGE_START) != 1 or text.count(BRIDGE_END) != 1:
        errors.append("the merged policy must hold exactly one Bridge Rules section")
    return errors


# ------------------------------------------------------------------ step
def _by_stem(paths: list[Path]) -> dict[str, Path]:
    return {Path(p).stem: Path(p) for p in paths}


def _fail(ctx: StepContext, pair: str, reason: str, tools: list[str], rounds: list[dict] | None = None) -> None:
    ctx.log.warning("policy merge for %s quarantined: %s", pair, reason)
    ctx.write_text("policy", "")
    last = rounds[-1]["errors"] if rounds else []
    ctx.write_json(
        "report",
        {
            "pair": pair,
            "status": "failed",
            "reason": reason,
            "domains": sorted(pair.split(PAIR_SEP)),
            "tools": tools,
            "sections": [],
            "bridge_rules": [],
            "rounds": rounds or [],
            "rounds_used": len(rounds or []),
            "errors": last,
        },
        SCHEMA,
    )


def load_inputs(ctx: StepContext) -> tuple[list[Blueprint], dict[str, str], str | None]:
    """(member blueprints sorted by domain, {domain: policy text}, quarantine reason)."""
    bps: list[Blueprint] = []
    for p in sorted(as_paths(ctx.inputs.get("blueprints")), key=lambda x: x.name):
        data = artifacts.read(p)
        if data.get("status") == "failed":
            return [], {}, f"{data.get('domain') or p.stem}: blueprint failed: {upstream_reason('s04', data)}"
        bps.append(load_blueprint(p))
    reports = _by_stem(as_paths(ctx.inputs.get("policy_reports")))
    texts = _by_stem(as_paths(ctx.inputs.get("policies")))
    policies: dict[str, str] = {}
    for bp in bps:
        rep = reports.get(bp.domain)
        if rep is not None and rep.is_file():
            r = artifacts.read(rep)
            if r.get("status") == "failed":
                return bps, {}, f"{bp.domain}: policy failed: {upstream_reason('s07', r)}"
        if bp.domain not in texts or not texts[bp.domain].is_file():
            return bps, {}, f"{bp.domain}: no policy among the inputs"
        policies[bp.domain] = artifacts.read_text(texts[bp.domain])
        if not policies[bp.domain].strip():
            return bps, {}, f"{bp.domain}: the policy is empty"
    if len(bps) != 2:
        return bps, policies, f"a pair needs exactly two member blueprints, got {len(bps)}"
    return bps, policies, None


def entity_columns(path: Path | None) -> dict[str, set[str]]:
    """Optional ``entities`` input: the catalogue's attributes per entity."""
    if path is None or not Path(path).is_file():
        return {}
    return {name: {a.name for a in e.attributes} for name, e in load_entities(Path(path)).items()}


def fused_graph(path: Path | None) -> dict | None:
    """Optional ``graph`` input: the pair's fused tool graph (s11), whose links order steps."""
    if path is None or not Path(path).is_file():
        return None
    graph = artifacts.read(Path(path))
    return graph if graph.get("status") != "failed" else None


def bridge_context(
    pair: str, vocab: PairVocabulary, members: list[MemberPolicy], derived: list[DerivedRule] | None = None
) -> dict:
    entities = set().union(*(set(m.bp.entities) for m in members))
    return {
        "pair": pair,
        "core_entity": vocab.core,
        "core_key": vocab.core_key,
        "shared_tables": sorted(t for t in vocab.tables if t in entities),
        "members": [
            {
                "domain": m.domain,
                "description": m.bp.description,
                "authorize_tool": vocab.authorize[m.domain],
                "tools": [
                    {
                        "name": ns_tool(m.domain, t.name),
                        "kind": t.kind,
                        "table": ns_table(m.domain, t.table, entities),
                        "description": t.description,
                    }
                    for t in m.bp.tools
                ],
                "tables": {
                    ns_table(m.domain, r.name, entities): sorted(c.name for c in r.columns) for r in m.bp.relationships
                },
                "global_rules": parse_policy(m.text).rules,
            }
            for m in members
        ],
        "kinds": list(KINDS),
        "bridge_rules": [
            {"id": r.id, "kind": r.kind, "names": r.names, "statement": r.statement} for r in derived or []
        ],
    }


def run(ctx: StepContext) -> None:
    pair = ctx.wildcards.get("pair") or ctx.wildcards.get("env", "")
    bps, policies, reason = load_inputs(ctx)
    tools = [ns_tool(bp.domain, t.name) for bp in bps for t in bp.tools]
    if reason:
        return _fail(ctx, pair, f"s13: {reason}", tools)
    if bps[0].core_entity != bps[1].core_entity:
        return _fail(
            ctx, pair, f"s13: members do not share a core entity ({bps[0].core_entity}, {bps[1].core_entity})", tools
        )
    entities = set().union(*(set(bp.entities) for bp in bps))
    members = [namespace_member(bp, policies[bp.domain], entities) for bp in bps]
    vocab = PairVocabulary.build(bps, policies, entity_columns(ctx.inputs.get("entities")))
    derived = derive_bridge_rules(bps, fused_graph(ctx.inputs.get("graph")))
    context = bridge_context(pair, vocab, members, derived)
    rounds: list[dict] = []

    def check(text: str) -> list[str]:
        errors = check_bridge(text, vocab, derived)
        rounds.append({"round": len(rounds), "errors": errors})
        return errors

    messages = render(
        "s13",
        "bridge_rules",
        context,
        pair=pair,
        domains=" and ".join(vocab.domains),
        core_entity=vocab.core,
        core_key=vocab.core_key,
    )
    max_rounds = ctx.cfg.policy.max_repair_rounds
    try:
        answer = ctx.llm.generate(
            "s13.bridge_rules", messages, role="text", context=context, check=check, max_rounds=max_rounds
        )
    except LLMError as exc:
        return _fail(
            ctx, pair, checks_failed("s13", "the Bridge Rules failed their checks", rounds, exc), tools, rounds
        )
    bridge = bridge_section(answer)
    text = compose(pair, members, bridge)
    problems = check_merged(text, members)
    if problems:
        return _fail(ctx, pair, "s13: the merged policy is malformed: " + "; ".join(problems[:5]), tools, rounds)
    rules, _ = parse_bridge(bridge)
    parsed = parse_policy(text)
    ctx.write_text("policy", text)
    ctx.write_json(
        "report",
        {
            "pair": pair,
            "status": "ok",
            "domains": vocab.domains,
            "core_entity": vocab.core,
            "tools": tools,
            "sections": parsed.order,
            "global_rules": len(parsed.rules),
            "bridge_rules": [{"id": r.id, "kind": r.kind, "text": r.text, "names": r.names} for r in rules],
            "namespace": {
                m.domain: {r.name: ns_table(m.domain, r.name, entities) for r in m.bp.relationships} for m in members
            },
            "sha256": io.sha256_text(text),
            "rounds": rounds,
            "rounds_used": len(rounds),
            "errors": [],
        },
        SCHEMA,
    )


__all__ = [
    "run",
    "namespace_text",
    "PairVocabulary",
    "parse_bridge",
    "check_bridge",
    "check_merged",
    "namespace_member",
    "compose",
    "BRIDGE_START",
    "BRIDGE_END",
]
