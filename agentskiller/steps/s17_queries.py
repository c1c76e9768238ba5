"""s17 queries: a persona-based user simulator turns each valid task into a query.

The text model (task ``s17.query``) writes a persona (name, manner), the reason for the
call, an instruction holding every value the task needs, the facts the user knows and a
natural first message. Checks, fed back as errors within ``tasks.query_repair_rounds``:

* grounding (:mod:`.grounding`): every concrete value in the text is a value of the
  instance (IDs, numbers, dates, emails, capitalised names);
* completeness: every slot value the template uses appears in the instruction;
* known facts: only values a real customer would have - their own identifiers, names,
  dates, references - never a relationship table's primary key unless the template says
  the user holds it (a booking reference).

Query IDs are ``sha256(env, template, instance)``: stable across reruns and providers.
"""

from __future__ import annotations

from typing import Any

from .. import io
from ..jobs import StepContext
from ..models.tasks import Instance, QueryDraft, Task, TaskTemplate
from .grounding import missing_values, ungrounded
from .task_env import artifact_failed, fill, load_blueprint, slot_names

SCHEMA = "query"


def query_id(env: str, template_id: str, instance_id: str) -> str:
    return io.sha256_json({"env": env, "template": template_id, "instance": instance_id})[:16]


def forbidden_ids(template: TaskTemplate, instance: Instance) -> dict[str, Any]:
    """Relationship primary keys the user does not hold: slot name -> value."""
    return {s.name: instance.values[s.name] for s in template.slots
            if s.kind == "record" and s.internal_id and s.name not in template.user_holds
            and s.name in instance.values}


def available_facts(template: TaskTemplate, instance: Instance, core_label: str) -> list[dict]:
    """What the user may know: their own record (no foreign keys), the slot values the
    instruction uses, except relationship IDs they do not hold."""
    hidden = forbidden_ids(template, instance)
    facts: list[dict] = []
    own = instance.records.get(core_label, {})
    for k, v in own.items():
        if v is not None and (not k.endswith("_id") or k in instance.values):
            facts.append({"fact": f"your {k.replace('_', ' ')}", "value": str(v)})
    used = set(slot_names(template.instruction))
    slot_by_name = {s.name: s for s in template.slots}
    for name in sorted(used):
        if name in hidden or name not in instance.values:
            continue
        label = name.split(".")[-1].replace("_", " ")
        s = slot_by_name.get(name)
        if s is not None and s.kind == "descriptor":
            label = f"{s.column.replace('_', ' ')} of the {name.split('.')[0].lower()}"
        fact = {"fact": label, "value": str(instance.values[name])}
        if fact not in facts and not any(f["value"] == fact["value"] for f in facts):
            facts.append(fact)
    return facts


def check_query(q: QueryDraft, template: TaskTemplate, instance: Instance) -> list[str]:
    allowed = [instance.values, instance.records]
    errors = []
    for field, text in (("persona.name", q.persona.name), ("reason_for_call", q.reason_for_call),
                        ("instruction", q.instruction), ("first_message", q.first_message)):
        for v in ungrounded(text, allowed):
            errors.append(f"{field}: {v} is not a value of this task; use only the values given")
    for f in q.known_facts:
        for v in ungrounded(f"{f.value}", allowed) + ungrounded(f.fact, allowed):
            errors.append(f"known_facts[{f.fact!r}]: {v} is not a value of this task")
    needed = [instance.values[n] for n in set(slot_names(template.instruction)) if n in instance.values]
    for v in missing_values(q.instruction, needed):
        errors.append(f"instruction: the value {v!r} is missing; the instruction must contain every value")
    hidden = forbidden_ids(template, instance)
    for name, v in hidden.items():
        for f in q.known_facts:
            if str(v) in f.value:
                errors.append(f"known_facts[{f.fact!r}]: {v} is an internal {name} the user does not hold")
        for field, text in (("instruction", q.instruction), ("first_message", q.first_message)):
            if str(v) in text:
                errors.append(f"{field}: contains the internal {name} {v}, which the user does not hold")
    return errors


def run(ctx: StepContext) -> None:
    from ..llm import LLMError
    from ..prompts import render

    env = ctx.wildcards.get("env") or ctx.wildcards.get("domain")
    reason = artifact_failed(ctx.inputs.get("tasks"))
    if reason:
        ctx.write_jsonl("queries", [{"env": env, "status": "failed", "reason": f"s17: tasks failed: {reason}"}],
                        SCHEMA)
        return
    tasks_doc = io.read_json(ctx.inputs["tasks"])
    templates = {t["template_id"]: TaskTemplate.model_validate(t) for t in tasks_doc.get("templates", [])}
    blueprints = [load_blueprint(p) for p in (ctx.inputs["blueprint"] if isinstance(ctx.inputs["blueprint"], list)
                                              else [ctx.inputs["blueprint"]])]
    domains = sorted(b.domain for b in blueprints)
    core = blueprints[0].core_entity
    rounds = int(ctx.config.get("tasks", {}).get("query_repair_rounds", 3))
    valid = [Task.model_validate(t) for t in tasks_doc.get("tasks", []) if t["status"] == "valid"]

    def one(task: Task) -> dict | None:
        tpl = templates[task.template_id]
        inst = Instance(instance_id=task.instance_id, template_id=task.template_id, user_id=task.user_id,
                        values=task.values, records=task.records, calls=task.golden_calls)
        context = {
            "env": env, "domains": [{"domain": b.domain, "description": b.description, "topic": b.topic}
                                    for b in blueprints],
            "core_entity": core,
            "template": {"instruction": tpl.instruction, "reason_for_call": tpl.reason_for_call,
                         "user_holds": tpl.user_holds, "trajectory": tpl.trajectory},
            "values": inst.values,
            "user_record": inst.records.get(core, {}),
            "facts_available": available_facts(tpl, inst, core),
            "internal_ids": sorted(forbidden_ids(tpl, inst)),
        }
        try:
            q = ctx.llm.generate(task="s17.query", messages=render("s17", "query", context), schema=QueryDraft,
                                 role="text", context=context, check=lambda d: check_query(d, tpl, inst),
                                 max_rounds=rounds)
        except LLMError as exc:
            ctx.log.warning("s17 %s: task %s dropped: %s", env, task.task_id, exc)
            return None
        return {"query_id": query_id(env, tpl.template_id, inst.instance_id), "env": env, "status": "ok",
                "domains": domains, "cross_domain": len(domains) > 1, "task_id": task.task_id,
                "template_id": tpl.template_id, "instance_id": inst.instance_id, "trajectory": tpl.trajectory,
                "persona": q.persona.model_dump(), "reason_for_call": q.reason_for_call,
                "instruction": q.instruction, "known_facts": [f.model_dump() for f in q.known_facts],
                "first_message": q.first_message}

    rows = [r for r in ctx.llm.map(one, valid) if r is not None]
    ctx.log.info("s17 %s: %d queries from %d valid tasks", env, len(rows), len(valid))
    ctx.write_jsonl("queries", rows, SCHEMA)
