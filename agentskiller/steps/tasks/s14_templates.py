"""s14 task templates: one abstract task per trajectory, judged by a second LLM request.

For every trajectory of the env's tool graph (capped by ``tasks.max_templates``) the text
model writes an instruction with ``{slot}`` placeholders and a reason for the call
(task ``s14.template``); the slots it may use are derived in code from the trajectory
(:func:`task_env.trajectory_slots`), and a placeholder that is not one of them is sent back
as an error. A judge (task ``s14.judge``) then scores the template 1-5 on four stated
criteria. A template is accepted when the mean score reaches ``tasks.judge_threshold``
and no criterion scores below 2 (one failed criterion - say a parameter the trajectory
needs but the instruction never gives - is enough to reject). In a pair, whose templates are
few (each fused trajectory carries a link), a rejected draft is revised once with the judge's
problems as feedback and judged again (``PAIR_JUDGE_REVISIONS``); a domain's are judged once.

Rejected and failed templates stay in the artifact with their scores and reasons, so a
rerun over an unchanged input reuses them instead of regenerating and re-judging (no
"judge shopping"); the LLM cache makes any rerun free anyway.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import failed_input
from agentskiller.jobs import StepContext
from agentskiller.models.tasks import CRITERIA, JudgeVerdict, Slot, TaskTemplate, TemplateDraft
from agentskiller.steps.tasks.task_env import TASK_INPUTS, EnvView, linked_targets, slot_names, trajectory_slots

SCHEMA = "task_templates"
#: judge-guided revisions of a rejected draft in a pair (see :func:`_one`)
PAIR_JUDGE_REVISIONS = 1
TOOL_MARK_RE = re.compile(r"<!--\s*TOOL:\s*([A-Za-z0-9_\-]+)\s*-->")


# ------------------------------------------------------------------ helpers
def policy_excerpt(policy: str, tools: list[str]) -> str:
    """Global part of the policy (before the first tool marker) plus the sections of
    ``tools`` (matched by advertised name, or by bare name in a namespaced pair)."""
    marks = list(TOOL_MARK_RE.finditer(policy))
    if not marks:
        return policy
    parts = [policy[: marks[0].start()].strip()]
    wanted = set(tools) | {t.split("__")[-1] for t in tools}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(policy)
        if m.group(1) in wanted or m.group(1).split("__")[-1] in wanted:
            parts.append(policy[m.start() : end].strip())
    return "\n\n".join(p for p in parts if p)


def template_id(env: str, trajectory: list[str]) -> str:
    return io.sha256_json({"env": env, "trajectory": trajectory})[:16]


def trajectory_context(
    view: EnvView, trajectory: list[str], slots: list[Slot], links: list[dict] | None = None
) -> list[dict]:
    """The trajectory as the prompts (and offline handlers) see it: per call, the tool's
    declaration and which slot feeds each parameter (or which earlier call's result field:
    ``link``)."""
    fed = linked_targets(links)
    by_call: dict[tuple[int, str], str] = {}
    for s in slots:
        for c in s.calls:
            by_call[(c, s.column)] = s.name
    out = []
    created: dict[str, int] = {}
    for i, name in enumerate(trajectory):
        ref = view.tool(name)
        t = ref.tool
        pk = view.primary_key(ref.domain, t.table)
        params = []
        for p in t.parameters:
            col = p.column or p.name
            entry: dict[str, Any] = {"name": p.name, "required": p.required, "description": p.description}
            if p.enum:
                entry["enum"] = p.enum
            slot = next(
                (
                    s.name
                    for s in slots
                    if i in s.calls and (s.column == col or s.name == p.name or s.name.endswith("_" + p.name))
                ),
                None,
            )
            lk = fed.get((i, p.name))
            if lk is not None:
                src = view.tool(trajectory[int(lk["from"]["call"])])
                entry["link"] = {"call": int(lk["from"]["call"]), "field": lk["from"]["field"], "table": src.table}
            elif slot:
                entry["slot"] = slot
            elif col == pk and ref.table in created:
                entry["from_call"] = created[ref.table]
            params.append(entry)
        # the physical table (namespaced in a pair): the slots name tables the same way
        out.append(
            {
                "index": i,
                "tool": name,
                "kind": t.kind,
                "table": ref.table,
                "description": t.description,
                "parameters": params,
                "preconditions": [c.model_dump() for c in t.preconditions],
                "effects": t.effects,
            }
        )
        if t.kind == "create":
            created[ref.table] = i
    return out


def base_context(
    view: EnvView, trajectory: list[str], slots: list[Slot], policy: str, links: list[dict] | None = None
) -> dict:
    out = {
        "env": view.env,
        "domains": [
            {"domain": d, "description": bp.description, "topic": bp.topic, "core_entity": bp.core_entity}
            for d, bp in sorted(view.blueprints.items())
        ],
        "core_entity": view.core_entity,
        "simulation_time": view.simulation_time,
        "trajectory": trajectory_context(view, trajectory, slots, links),
        "slots": [s.model_dump() for s in slots],
        "policy": policy_excerpt(policy, trajectory),
    }
    if links:  # (only then: a single-domain request stays the same request, cache and all)
        out["links"] = list(links)
    return out


def silent_updates(
    instruction: str, slots: list[Slot], kinds: list[str], linked: set[int] | None = None
) -> list[tuple[int, list[str]]]:
    """Update calls (index, their value slots) for which ``instruction`` gives no new value:
    such a call would change nothing (the tool refuses an empty update). An update a link
    feeds (``linked``: call indices) gets its new value from the other service."""
    used = set(slot_names(instruction))
    out = []
    for i, kind in enumerate(kinds):
        if kind != "update" or i in (linked or set()):
            continue
        names = sorted(s.name for s in slots if s.kind == "value" and i in s.calls)
        if names and not used & set(names):
            out.append((i, names))
    return out


def check_draft(
    draft: TemplateDraft, slots: list[Slot], kinds: list[str] | None = None, linked: set[int] | None = None
) -> list[str]:
    """Format errors the writer must fix (content quality is the judge's business), and
    update calls left without any new value (``kinds``: the trajectory's tool kinds)."""
    known = {s.name: s for s in slots}
    errors = []
    for i, names in silent_updates(draft.instruction, slots, kinds or [], linked):
        errors.append(
            f"call {i} is an update but the instruction gives no new value for it; "
            "use at least one of: " + ", ".join("{" + n + "}" for n in names)
        )
    for name in sorted(set(slot_names(draft.instruction)) | set(slot_names(draft.reason_for_call))):
        if name not in known:
            errors.append(f"unknown placeholder {{{name}}}; use only these slots: " + ", ".join(sorted(known)))
    for name in draft.user_holds:
        s = known.get(name)
        if s is None or s.kind != "record" or not s.internal_id:
            errors.append(f"user_holds entry {name!r} is not a record slot of a relationship table")
    if len(draft.instruction) > 1500:
        errors.append("instruction is longer than 1500 characters")
    return errors


def accept(scores: dict[str, int], threshold: float) -> tuple[bool, float]:
    mean = round(sum(scores.values()) / len(scores), 3)
    return mean >= threshold and min(scores.values()) >= 2, mean


# ---------------------------------------------------------------------- step
def template_links(trajectory: list[str], links: list[dict]) -> list[dict]:
    """s11's links (``call`` = namespaced tool name) with ``call`` = index into ``trajectory``."""
    out = []
    for lk in links or []:
        src, dst = lk["from"]["call"], lk["to"]["call"]
        if src in trajectory and dst in trajectory:
            out.append(
                {
                    "from": {"call": trajectory.index(src), "field": lk["from"]["field"]},
                    "to": {"call": trajectory.index(dst), "param": lk["to"]["param"]},
                    "relation": lk.get("relation", "equal"),
                }
            )
    return out


def _one(
    ctx: StepContext,
    view: EnvView,
    trajectory: list[str],
    policy: str,
    threshold: float,
    story: dict | None = None,
) -> TaskTemplate:
    from agentskiller.llm import LLMError
    from agentskiller.prompts import render

    tid = template_id(view.env, trajectory)
    links = template_links(trajectory, (story or {}).get("links") or [])
    try:
        slots = trajectory_slots(view, trajectory, links)
    except KeyError as exc:
        return TaskTemplate(template_id=tid, trajectory=trajectory, slots=[], status="failed", reason=str(exc))
    context = base_context(view, trajectory, slots, policy, links)
    if story:
        context["storyline"] = story.get("storyline", "")
    kinds = [c["kind"] for c in context["trajectory"]]
    targets = {int(lk["to"]["call"]) for lk in links}
    # A pair's templates are few (each fused trajectory must carry a link), so a pair's draft
    # the judge rejects is revised once with the judge's problems as feedback, then judged
    # anew; a domain's templates are many and are judged once.
    revisions = PAIR_JUDGE_REVISIONS if view.cross_domain else 0
    judged: dict[str, Any] = {}

    def judge(d: TemplateDraft) -> JudgeVerdict:
        jctx = {**context, "criteria": list(CRITERIA), "template": d.model_dump()}
        return ctx.llm.generate(
            task="s14.judge", messages=render("s14", "judge", jctx), schema=JudgeVerdict, role="text", context=jctx
        )

    def check(d: TemplateDraft) -> list[str]:
        problems = check_draft(d, slots, kinds, targets)
        if problems or judged.get("revisions", 0) >= revisions:
            return problems
        try:
            verdict = judge(d)
        except LLMError as exc:
            judged["error"] = exc
            return []
        judged["verdict"], judged["draft"] = verdict, d
        if accept(verdict.scores(), threshold)[0]:
            return []
        judged["revisions"] = judged.get("revisions", 0) + 1
        return [f"the reviewer rejected this instruction: {p}" for p in verdict.problems] or [
            "the reviewer rejected this instruction"
        ]

    try:
        draft = ctx.llm.generate(
            task="s14.template",
            messages=render("s14", "template", context),
            schema=TemplateDraft,
            role="text",
            context=context,
            check=check,
        )
    except LLMError as exc:
        return TaskTemplate(
            template_id=tid,
            trajectory=trajectory,
            slots=slots,
            status="failed",
            reason=f"template writer: {exc}",
            links=links,
        )
    base = dict(
        template_id=tid,
        trajectory=trajectory,
        slots=slots,
        instruction=draft.instruction,
        reason_for_call=draft.reason_for_call,
        user_holds=sorted(set(draft.user_holds)),
        self_correction=draft.self_correction,
        links=links,
        storyline=(story or {}).get("storyline", ""),
    )
    if "error" in judged:  # fail closed: an unjudged template is not accepted
        return TaskTemplate(**base, status="failed", reason=f"judge: {judged['error']}")
    if judged.get("draft") is draft:
        verdict = judged["verdict"]
    else:
        try:
            verdict = judge(draft)
        except LLMError as exc:  # fail closed: an unjudged template is not accepted
            return TaskTemplate(**base, status="failed", reason=f"judge: {exc}")
    scores = verdict.scores()
    ok, mean = accept(scores, threshold)
    reason = (
        None
        if ok
        else (
            f"score {mean} below threshold {threshold}"
            if mean < threshold
            else "criterion below 2: " + ", ".join(c for c, v in scores.items() if v < 2)
        )
    )
    return TaskTemplate(
        **base,
        status="accepted" if ok else "rejected",
        scores=scores,
        score=mean,
        problems=verdict.problems,
        reason=reason,
    )


def failed_artifact(env: str, reason: str) -> dict:
    return {
        "env": env,
        "status": "failed",
        "reason": reason,
        "domains": [],
        "cross_domain": "+" in env,
        "templates": [],
        "counts": {"trajectories": 0, "accepted": 0, "rejected": 0, "failed": 0},
    }


def _reusable(ctx: StepContext) -> dict[str, dict]:
    """Templates of a previous run over the very same inputs (library reruns)."""
    path = ctx.outputs.get("templates")
    if path is None or not Path(path).is_file():
        return {}
    try:
        old = artifacts.read(path)
    except artifacts.ArtifactError:  # a damaged earlier output is simply not reused
        return {}
    from agentskiller.prompts import prompt_version

    # same inputs, seed, provider, models and prompt wording: the same requests
    if old.get("meta") != ctx.meta() or old.get("prompt_version") != prompt_version("s14") or old.get("status") != "ok":
        return {}
    return {t["template_id"]: t for t in old.get("templates", [])}


def run(ctx: StepContext) -> None:
    env = ctx.wildcards.get("env") or ctx.wildcards.get("domain")
    reason = failed_input(ctx.inputs, TASK_INPUTS, "s14")
    if reason:
        ctx.write_json("templates", failed_artifact(env, reason), SCHEMA)
        return
    threshold, cap = ctx.cfg.tasks.judge_threshold, ctx.cfg.tasks.max_templates
    view = EnvView.load(env, ctx.inputs["blueprint"], ctx.inputs["server_report"])
    graph = artifacts.read(ctx.inputs["tool_graph"])
    trajectories = [list(t) for t in graph.get("trajectories", [])][:cap]
    stories = {tuple(s["trajectory"]): s for s in graph.get("storylines") or []}
    policy = artifacts.read_text(ctx.inputs["policy"])
    old = _reusable(ctx)
    from agentskiller.prompts import prompt_version

    def work(traj: list[str]) -> TaskTemplate:
        prev = old.get(template_id(env, traj))
        if prev is not None:
            return TaskTemplate.model_validate(prev)
        made = _one(ctx, view, traj, policy, threshold, stories.get(tuple(traj)))
        ctx.log.info(
            "s14 %s: template %s %s (of %d trajectories)", env, made.template_id, made.status, len(trajectories)
        )
        return made

    templates = ctx.llm.map(work, trajectories)  # bounded by llm.max_concurrency, order kept
    counts = {"trajectories": len(trajectories)}
    for st in ("accepted", "rejected", "failed"):
        counts[st] = sum(t.status == st for t in templates)
    ctx.log.info("s14 %s: %s", env, counts)
    ctx.write_json(
        "templates",
        {
            "env": env,
            "status": "ok",
            "domains": view.domains,
            "cross_domain": view.cross_domain,
            "threshold": threshold,
            "prompt_version": prompt_version("s14"),
            "templates": [t.model_dump() for t in templates],
            "counts": counts,
        },
        SCHEMA,
    )
