"""s17 queries: a persona-based user simulator turns each valid task into a query.

The text model (task ``s17.query``) writes a persona (name, manner), the reason for the
call, an instruction holding every value the task needs, the facts the user knows and a
natural first message. Checks, fed back as errors within ``tasks.query_repair_rounds``:

* grounding (:mod:`.grounding`): every concrete value in the text is a value of the
  instance - its slot values and the records it touches or references, the user's own
  core record (their address, phone, email, date of birth) among them. Nothing else is
  allowed, so an invented value is still caught;
* completeness: every slot value the template uses, and every value the user supplies to
  a call (even one the template's wording left out), appears in the instruction;
* known facts: only values a real customer would have - their name, their own ID, the
  references they hold and the values the task needs, under natural labels
  (:func:`available_facts`) - never a relationship table's primary key (a slot's or any
  touched record's) unless the template says the user holds it (a booking reference).

Query IDs are ``sha256(env, template, instance)``: stable across reruns and providers.
"""

from __future__ import annotations

import re
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import as_paths, failure_reason, require_blueprint
from agentskiller.grounding import mentions, missing_values, ungrounded
from agentskiller.jobs import StepContext
from agentskiller.models.tasks import Instance, QueryDraft, Slot, Task, TaskTemplate
from agentskiller.steps.tasks.task_env import slot_names

SCHEMA = "query"


def query_id(env: str, template_id: str, instance_id: str) -> str:
    return io.sha256_json({"env": env, "template": template_id, "instance": instance_id})[:16]


def forbidden_ids(
    template: TaskTemplate, instance: Instance, relationship_pks: dict[str, str] | None = None
) -> dict[str, Any]:
    """Relationship primary keys the user does not hold: slot name (or ``Label.pk`` for a
    touched record that is no slot) -> value. ``relationship_pks``: relationship table
    label -> its primary key column, from the blueprints."""
    out = {
        s.name: instance.values[s.name]
        for s in template.slots
        if s.kind == "record" and s.internal_id and s.name not in template.user_holds and s.name in instance.values
    }
    held = {str(instance.values[n]) for n in template.user_holds if n in instance.values}
    for label, pk in sorted((relationship_pks or {}).items()):
        v = instance.records.get(label, {}).get(pk)
        if v is not None and str(v) not in held and v not in out.values():
            out[f"{label}.{pk}"] = v
    return out


def allowed_values(instance: Instance) -> list[Any]:
    """What a query may mention: the instance's slot values and every record it touches or
    references (s15 puts the user's own core record and the records the touched ones point
    at into ``records``)."""
    return [instance.values, instance.records]


def required_values(template: TaskTemplate, instance: Instance) -> dict[str, Any]:
    """Slot -> value the instruction must contain: what the user states (s15's
    ``states``: the slots the template uses, every user-supplied value the golden calls
    take - s15 may have had to pick one the wording left out, e.g. the one new value an
    update needs - and a descriptor that picks their record out of a lookup's results)."""
    kinds = {s.name: s.kind for s in template.slots}
    names = set(slot_names(template.instruction)) | {n for n in instance.values if kinds.get(n) == "value"}
    names |= set(instance.states)
    return {n: instance.values[n] for n in sorted(names) if n in instance.values}


def relationship_pks(blueprints: list) -> dict[str, str]:
    return {rel.name: rel.primary_key for b in blueprints for rel in b.relationships}


#: how a person names a column ("scheduled_at" -> "date and time")
COLUMN_WORDS = {
    "scheduled_at": "date and time",
    "starts_at": "start time",
    "check_in_date": "check-in date",
    "check_out_date": "check-out date",
    "nights": "number of nights",
    "guests": "number of guests",
    "passengers": "number of passengers",
    "duration_minutes": "duration in minutes",
    "progress_percent": "progress in percent",
    "refills_remaining": "number of refills",
    "full_name": "name",
    "dob": "date of birth",
}
_CREATE_WORDS = {"book", "make", "request", "submit", "purchase", "open", "enroll", "create", "add", "schedule"}
_CREATE_WORDS |= {"reserve", "apply", "register", "order", "start", "place", "buy", "subscribe", "file", "send"}
_READ_WORDS = {"get", "list", "search", "find", "show", "view", "count", "total", "lookup", "browse"}
_ENUM_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def table_words(table: str) -> str:
    """A table as words: ``CityRideDispatch_RideRequest`` -> "ride request"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", table.split("_")[-1]).lower()


def column_words(column: str) -> str:
    """A column as a person says it: ``dropoff_address`` -> "drop-off address", ``created_at`` -> "created time"."""
    col = re.sub(r"^new_", "", column)
    if col in COLUMN_WORDS:
        return COLUMN_WORDS[col]
    col = re.sub(r"_at$", "_time", col)
    col = re.sub(r"_id$", "_ID", col)
    text = col.replace("_", " ")
    return re.sub(r"\bdropoff\b", "drop-off", re.sub(r"\bpickup\b", "pick-up", text))


def fact_value(value: Any) -> str:
    """A fact's value as the user knows it: an enum value in words (``on_leave`` -> "on leave"),
    anything else verbatim."""
    text = str(value)
    return text.replace("_", " ") if isinstance(value, str) and _ENUM_RE.fullmatch(text) else text


def _call_kind(tool: str, kinds: dict[str, str] | None) -> str:
    """A trajectory tool's kind: declared, else read off its name."""
    name = tool.split("__")[-1]
    if kinds and name in kinds:
        return kinds[name]
    first = name.split("_")[0]
    if first in ("authorize", "login", "verify", "authenticate"):
        return "authorize"
    return "search" if first in _READ_WORDS else "create" if first in _CREATE_WORDS else "update"


def fact_label(slot: Slot, template: TaskTemplate, core_label: str, kinds: dict[str, str] | None = None) -> str:
    """How the user would name what a slot holds: "your patient ID", "your ride request
    reference", "the dentist ID", "the new drop-off address for your ride request", "the date
    and time for the new dental appointment", "the status to search for", "the check-in date of
    your hotel reservation"."""
    noun, col = table_words(slot.table), column_words(slot.column)
    if slot.kind == "record":
        if slot.table == core_label:
            return f"your {noun} ID"
        if slot.internal_id:
            return f"your {noun} reference"
        return f"the {noun} ID"
    if slot.kind == "descriptor":
        return f"your {col}" if slot.table == core_label else f"the {col} of your {noun}"
    kind = _call_kind(template.trajectory[slot.calls[0]], kinds) if slot.calls else "create"
    if kind in ("search", "compute"):
        return f"the {col} to search for"
    if kind == "update":
        return f"the new {col} for your {noun}"
    return f"the {col} for the new {noun}"


def available_facts(
    template: TaskTemplate,
    instance: Instance,
    core_label: str,
    rel_pks: dict[str, str] | None = None,
    tool_kinds: dict[str, str] | None = None,
) -> list[dict]:
    """What the user knows, the way a customer would say it: their name, their own ID, the
    references they hold (``user_holds``) and the values the task needs - what the
    instruction must state - each under a natural label (:func:`fact_label`), enum values in
    words. Nothing else of their profile: an email, a phone number or a date of birth only
    when the task needs it. Never a relationship ID they do not hold. Every value comes from
    the instance, so a simulator that states only these facts is grounded. ``tool_kinds``:
    tool name -> kind, to tell a new value from a search filter (read off the tool's name
    when absent)."""
    hidden = forbidden_ids(template, instance, rel_pks)
    own = instance.records.get(core_label, {})
    slot_by_name = {s.name: s for s in template.slots}
    facts: list[dict] = []

    def add(label: str, value: Any) -> None:
        v = fact_value(value)
        if value is not None and v and not any(f["value"] == v for f in facts):
            facts.append({"fact": label, "value": v})

    name = next((own[k] for k in ("full_name", "name", "display_name") if isinstance(own.get(k), str)), None)
    if name is None and isinstance(own.get("first_name"), str) and isinstance(own.get("last_name"), str):
        name = f"{own['first_name']} {own['last_name']}"
    if name:
        add("your name", name)
    needed = required_values(template, instance)
    held = [n for n in template.user_holds if n in instance.values]

    def order(n: str) -> tuple:
        s = slot_by_name.get(n)
        first = min(s.calls) if s and s.calls else 99
        return (s is None or s.table != core_label or s.kind != "record", first, n)

    for n in sorted(set(needed) | set(held), key=order):
        value = instance.values[n]
        if n in hidden or value in hidden.values():
            continue
        s = slot_by_name.get(n)
        if s is None:
            label = f"the {column_words(n.split('.')[-1])}"
        elif s.kind == "value" and (
            own.get(s.column) == value
            or (bool(s.calls) and _call_kind(template.trajectory[s.calls[0]], tool_kinds) == "authorize")
        ):
            label = f"your {column_words(s.column)}"  # their own email, date of birth ...
        else:
            label = fact_label(s, template, core_label, tool_kinds)
        add(label, value)
    return facts


def check_query(
    q: QueryDraft, template: TaskTemplate, instance: Instance, rel_pks: dict[str, str] | None = None
) -> list[str]:
    allowed = allowed_values(instance)
    errors = []
    for field, text in (
        ("persona.name", q.persona.name),
        ("reason_for_call", q.reason_for_call),
        ("instruction", q.instruction),
        ("first_message", q.first_message),
    ):
        for v in ungrounded(text, allowed):
            errors.append(f"{field}: {v} is not a value of this task; use only the values given")
    for f in q.known_facts:
        for v in ungrounded(f"{f.value}", allowed) + ungrounded(f.fact, allowed):
            errors.append(f"known_facts[{f.fact!r}]: {v} is not a value of this task")
    needed = list(required_values(template, instance).values())
    for v in missing_values(q.instruction, needed):
        errors.append(f"instruction: the value {v!r} is missing; the instruction must contain every value")
    hidden = forbidden_ids(template, instance, rel_pks)
    for name, v in hidden.items():
        for f in q.known_facts:
            if str(v) in f.value:
                errors.append(f"known_facts[{f.fact!r}]: {v} is an internal {name} the user does not hold")
        for field, text in (("instruction", q.instruction), ("first_message", q.first_message)):
            if str(v) in text:
                errors.append(f"{field}: contains the internal {name} {v}, which the user does not hold")
    return errors


def answer_leaks(q: QueryDraft, task: Task, said: dict[str, Any]) -> list[str]:
    """A lookup's answer stated in the query: the user asks because they do not know it."""
    told = [str(v) for v in said.values()]
    errors = []
    for item in task.expected_answer:
        v = item.value
        if v is None or isinstance(v, bool) or str(v) in told or len(str(v)) < 3:
            continue
        for field, text in (("instruction", q.instruction), ("first_message", q.first_message)):
            if mentions(text, v):
                errors.append(f"{field}: states {v!r}, the answer the user asks for; the user does not know it")
    return errors


def link_leaks(q: QueryDraft, task: Task) -> list[str]:
    """A linked value stated in the query: the user does not know it; the assistant must
    carry it across from the other service's result (s11 links)."""
    errors = []
    for lk in task.links:
        i, field = int(lk["from"]["call"]), lk["from"]["field"]
        out = task.expected_outputs[i] if i < len(task.expected_outputs) else None
        v = out.get(field) if isinstance(out, dict) else None
        if v is None or isinstance(v, bool) or len(str(v)) < 3:
            continue
        texts = [("instruction", q.instruction), ("first_message", q.first_message)]
        texts += [(f"known_facts[{f.fact!r}]", f.value) for f in q.known_facts]
        for where, text in texts:
            if mentions(text, v):
                errors.append(
                    f"{where}: states {v!r}, which the other service hands over ({field}); the user does not know it"
                )
    return errors


def query_context(
    env: str,
    blueprints: list,
    tpl: TaskTemplate,
    inst: Instance,
    core: str,
    rel_pks: dict[str, str] | None = None,
    tool_kinds: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The request context of one query (what ``s17.query`` and its prompt read)."""
    hidden = forbidden_ids(tpl, inst, rel_pks)
    template_slots = set(slot_names(tpl.instruction))
    slot_kinds = {s.name: s.kind for s in tpl.slots}
    return {
        "env": env,
        "domains": [{"domain": b.domain, "description": b.description, "topic": b.topic} for b in blueprints],
        "core_entity": core,
        "template": {
            "instruction": tpl.instruction,
            "reason_for_call": tpl.reason_for_call,
            "user_holds": tpl.user_holds,
            "trajectory": tpl.trajectory,
        },
        "values": inst.values,
        # values the calls take that the template's wording does not give: the
        # instruction must state them too
        "extra_values": {
            n: v
            for n, v in required_values(tpl, inst).items()
            if n not in template_slots and slot_kinds.get(n) != "descriptor"
        },
        # descriptors s15 added so that the user picks their record out of a lookup's
        # results ("the one on June 6")
        "identify": {
            n: v
            for n, v in required_values(tpl, inst).items()
            if n not in template_slots and slot_kinds.get(n) == "descriptor"
        },
        "task_kind": inst.task_kind,
        "asks": [{"field": a, "label": a.replace("_", " ")} for a in inst.asks],
        "user_record": inst.records.get(core, {}),
        "facts_available": available_facts(tpl, inst, core, rel_pks, tool_kinds),
        "internal_ids": sorted(hidden),
        "internal_values": sorted({str(v) for v in hidden.values()}),
    }


def run(ctx: StepContext) -> None:
    from agentskiller.llm import LLMError
    from agentskiller.prompts import render

    env = ctx.wildcards.get("env") or ctx.wildcards.get("domain")
    reason = failure_reason(ctx.inputs.get("tasks"))
    if reason:
        ctx.write_jsonl("queries", [{"env": env, "status": "failed", "reason": f"s17: tasks failed: {reason}"}], SCHEMA)
        return
    tasks_doc = artifacts.read(ctx.inputs["tasks"])
    templates = {t["template_id"]: TaskTemplate.model_validate(t) for t in tasks_doc.get("templates", [])}
    blueprints = [require_blueprint(p) for p in as_paths(ctx.inputs["blueprint"])]
    domains = sorted(b.domain for b in blueprints)
    core = blueprints[0].core_entity
    rounds = ctx.cfg.tasks.query_repair_rounds
    valid = [Task.model_validate(t) for t in tasks_doc.get("tasks", []) if t["status"] == "valid"]
    rel_pks = relationship_pks(blueprints)
    tool_kinds = {t.name: t.kind for b in blueprints for t in b.tools}

    def one(task: Task) -> dict | None:
        tpl = templates[task.template_id]
        inst = Instance(
            instance_id=task.instance_id,
            template_id=task.template_id,
            user_id=task.user_id,
            values=task.values,
            records=task.records,
            calls=task.golden_calls,
            task_kind=task.task_kind,
            states=task.states,
            asks=task.asks,
            refusal=task.refusal,
        )
        context = query_context(env, blueprints, tpl, inst, core, rel_pks, tool_kinds)
        try:
            q = ctx.llm.generate(
                task="s17.query",
                messages=render("s17", "query", context),
                schema=QueryDraft,
                role="text",
                context=context,
                check=lambda d: (
                    check_query(d, tpl, inst, rel_pks)
                    + answer_leaks(d, task, required_values(tpl, inst))
                    + link_leaks(d, task)
                ),
                max_rounds=rounds,
            )
        except LLMError as exc:
            ctx.log.warning("s17 %s: task %s dropped: %s", env, task.task_id, exc)
            return None
        ctx.log.info("s17 %s: task %s rendered (of %d valid tasks)", env, task.task_id, len(valid))
        return {
            "query_id": query_id(env, tpl.template_id, inst.instance_id),
            "env": env,
            "status": "ok",
            "domains": domains,
            "cross_domain": len(domains) > 1,
            "task_id": task.task_id,
            "template_id": tpl.template_id,
            "instance_id": inst.instance_id,
            "trajectory": [c.name for c in task.golden_calls],
            "persona": q.persona.model_dump(),
            "reason_for_call": q.reason_for_call,
            "instruction": q.instruction,
            "known_facts": [f.model_dump() for f in q.known_facts],
            "first_message": q.first_message,
            "task_kind": task.task_kind,
        }

    rows = [r for r in ctx.llm.map(one, valid) if r is not None]
    ctx.log.info("s17 %s: %d queries from %d valid tasks", env, len(rows), len(valid))
    ctx.write_jsonl("queries", rows, SCHEMA)
