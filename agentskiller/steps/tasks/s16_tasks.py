"""s16 task filtering: execute every instance's golden calls on a fresh state.

All instances of an env run in one sandboxed worker process per pass
(``runtime.worker.execute_episodes``), each episode on its own fresh copy of the initial
state. Arguments that only exist at execution time (the ID a create returned) carry a
``resolve`` rule ``{call, field}``; they are filled from that call's result. Since the
runtime's IDs are deterministic per state, an episode's prefix replays identically, so a
pass runs each episode up to its first unresolved call, the rule is applied to the result,
and the next pass runs the longer prefix. Every replay (the dataset test, the evaluator)
applies the same rule and reaches the same values.

A task is valid only if every call succeeds (a call marked ``expect: refused`` - the ID an
``auth_failure`` user gives - must be refused), every write call (create, update, delete)
really changes the state hash, every list call returns something, and every argument has a
source an agent can reach (:mod:`.grounding_map`; otherwise ``ungrounded_argument``). A
``refusal`` task's forbidden write runs after its golden path and must be refused; refusal
and auth-failure tasks must end in the initial state. Valid tasks record the expected
outputs, the final state hash, the grounding map, a lookup's ``expected_answer`` (the
values of the asked columns in the last result) and the difficulty; invalid ones keep the
failing call and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import failed_input
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import WRITE_KINDS
from agentskiller.models.tasks import AnswerItem, Difficulty, GoldenCall, Instance, Task
from agentskiller.steps.tasks.grounding_map import grounding, scalars
from agentskiller.steps.tasks.task_env import TASK_INPUTS, EnvView

SCHEMA = "tasks"

Executor = Callable[[Path, list[list[dict]]], list[dict]]


def resolve_value(result: Any, field: str) -> Any:
    """The value of ``field`` in a call result (a record, or a dict wrapping one)."""
    if isinstance(result, dict):
        if field in result:
            return result[field]
        for v in result.values():  # {"appointment": {...}} style wrappers
            if isinstance(v, dict) and field in v:
                return v[field]
    raise KeyError(f"result has no field {field!r}")


def apply_resolves(calls: list[GoldenCall], results: list[Any]) -> list[dict] | None:
    """Arguments of the longest prefix whose values are all known from ``results``."""
    out = []
    for call in calls:
        args = dict(call.arguments)
        for param, rule in call.resolve.items():
            if rule.call >= len(results):
                return out
            args[param] = resolve_value(results[rule.call], rule.field)
        out.append({"tool": call.name, "arguments": args})
    return out


def sandboxed_executor(sandbox_cfg: dict | None) -> Executor:
    """Episodes through the runtime's sandboxed worker (one process per batch)."""
    from agentskiller.runtime.sandbox import SandboxSettings
    from agentskiller.runtime.worker import execute_episodes

    settings = SandboxSettings.from_config(sandbox_cfg)

    def run(env_path: Path, episodes: list[list[dict]]) -> list[dict]:
        eps = [{"id": f"e{i:05d}", "calls": e} for i, e in enumerate(episodes)]
        return [r.model_dump() for r in execute_episodes(env_path, eps, settings)]

    return run


def inprocess_executor() -> Executor:
    """Trusted replays only (tests over hand-written tools): no sandbox."""
    from agentskiller.runtime.worker import execute_episodes_inprocess

    def run(env_path: Path, episodes: list[list[dict]]) -> list[dict]:
        eps = [{"id": f"e{i:05d}", "calls": e} for i, e in enumerate(episodes)]
        return [r.model_dump() for r in execute_episodes_inprocess(env_path, eps)]

    return run


def _episode_calls(result: Any) -> list[dict]:
    if isinstance(result, dict):
        if result.get("error"):
            return [{"ok": False, "error_type": "episode", "error": result["error"]}]
        return list(result.get("calls") or [])
    return list(result or [])


def episode_calls(inst: Instance) -> list[GoldenCall]:
    """What s16 runs: the golden calls, then a refusal task's forbidden write."""
    if inst.refusal is None:
        return list(inst.calls)
    forbidden = GoldenCall(name=inst.refusal.name, arguments=inst.refusal.arguments, expect="refused")
    return [*inst.calls, forbidden]


def _params(view: EnvView, names: set[str]) -> dict[str, dict[str, tuple[list | None, str | None]]]:
    return {n: {p.name: (p.enum, p.type) for p in view.tool(n).tool.parameters} for n in names}


def expected_answer(inst: Instance, results: list[Any]) -> list[AnswerItem]:
    """The values a lookup user must be told: the asked columns of the last result (of each
    record, for a list), or every number a compute call returned."""
    if inst.task_kind != "lookup" or not results:
        return []
    k = len(results) - 1
    last = results[k]
    if not inst.asks:  # a count or a total: its numbers, each value once
        seen: list = []
        out = []
        for path, v in scalars(last):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in seen:
                seen.append(v)
                out.append(AnswerItem(call=k, field=path, value=v))
        return out
    recs = last if isinstance(last, list) else [last]
    return [
        AnswerItem(call=k, field=f"{i}.{col}" if isinstance(last, list) else col, value=r.get(col))
        for i, r in enumerate(recs)
        if isinstance(r, dict)
        for col in inst.asks
        if r.get(col) is not None
    ]


def said_values(inst: Instance) -> list[Any]:
    """The values the user states (see ``Instance.states``)."""
    return [inst.values[n] for n in inst.states if n in inst.values]


def check_outcome(
    inst: Instance, calls: list[GoldenCall], recs: list[dict], kinds: dict, initial: str
) -> tuple[int, str] | None:
    """(call, reason) of the first thing that makes the executed task invalid, else None."""
    prev = initial
    for i, (c, r) in enumerate(zip(calls, recs)):
        if c.expect == "refused":
            if r.get("ok"):
                return i, f"call {i} ({c.name}) should have been refused but succeeded"
            if r.get("state_hash_after", prev) != prev:
                return i, f"call {i} ({c.name}) was refused but changed the state"
            continue
        after = r.get("state_hash_after")
        if kinds[c.name] in WRITE_KINDS and after == prev:
            return i, f"call {i} ({c.name}) is a write that did not change the state"
        if kinds[c.name] == "search" and r.get("result") == []:
            return i, f"empty_lookup: call {i} ({c.name}) returned no record"
        prev = after
    if inst.task_kind in ("refusal", "auth_failure") and prev != initial:
        return len(recs) - 1, f"a {inst.task_kind} task must leave the state as it found it"
    return None


def validate(
    view: EnvView, env_path: Path, instances: list[Instance], initial_hash: str, execute: Executor
) -> list[Task]:
    """Run the golden calls of ``instances``; one :class:`Task` per instance."""
    runs = {i.instance_id: episode_calls(i) for i in instances}
    kinds = {c.name: view.tool(c.name).tool.kind for calls in runs.values() for c in calls}
    params = _params(view, set(kinds))
    results: dict[str, list[dict]] = {i.instance_id: [] for i in instances}
    args: dict[str, list[dict]] = {}
    failed: dict[str, tuple[int, str]] = {}
    pending = list(instances)
    while pending:
        batch = []
        for inst in pending:
            known = [r.get("result") for r in results[inst.instance_id]]
            try:
                prefix = apply_resolves(runs[inst.instance_id], known)
            except KeyError as exc:
                k = len(known)
                failed[inst.instance_id] = (k, f"cannot resolve an argument of call {k}: {exc}")
                continue
            args[inst.instance_id] = prefix
            batch.append((inst, prefix))
        if not batch:
            break
        outs = execute(env_path, [p for _, p in batch])
        pending = []
        for (inst, prefix), out in zip(batch, outs):
            recs = _episode_calls(out)
            results[inst.instance_id] = recs
            run = runs[inst.instance_id]
            bad = next(
                (i for i, r in enumerate(recs) if not r.get("ok") and (i >= len(run) or run[i].expect != "refused")),
                None,
            )
            if bad is not None:
                r = recs[bad]
                failed[inst.instance_id] = (bad, f"{r.get('error_type') or 'error'}: {r.get('error')}")
            elif len(recs) < len(prefix):
                failed[inst.instance_id] = (len(recs), "the episode ended early")
            elif len(prefix) < len(run):
                pending.append(inst)  # a later call needs this prefix's results
    tasks = []
    now = view.simulation_time
    for inst in instances:
        tid = io.sha256_json({"env": view.env, "instance": inst.instance_id})[:16]
        run = runs[inst.instance_id]
        recs = results[inst.instance_id]
        n = len(inst.calls)
        base = dict(
            task_id=tid,
            template_id=inst.template_id,
            instance_id=inst.instance_id,
            golden_calls=[c.model_copy() for c in inst.calls],
            user_id=inst.user_id,
            values=inst.values,
            records=inst.records,
            initial_state_hash=initial_hash,
            task_kind=inst.task_kind,
            states=inst.states,
            asks=inst.asks,
            refusal=inst.refusal,
            links=inst.links,
        )
        outputs = [r.get("result") for r in recs[:n]]
        problem = failed.get(inst.instance_id) or check_outcome(inst, run, recs, kinds, initial_hash)
        grounded: list[dict] = []
        if problem is None:
            executed = apply_resolves(inst.calls, outputs) or []
            grounded = grounding(
                inst.calls, [e["arguments"] for e in executed], outputs, said_values(inst), params, now
            )
            loose = [(i, p) for i, g in enumerate(grounded) for p, src in g.items() if src is None]
            if loose:
                i, p = loose[0]
                problem = (
                    i,
                    f"ungrounded_argument: {p} of call {i} ({inst.calls[i].name}) comes from nowhere an agent can see",
                )
        if problem is not None:
            k, why = problem
            name = run[k].name if k < len(run) else "?"
            tasks.append(
                Task(
                    **base,
                    status="invalid",
                    failing_call=k,
                    reason=why
                    if why.startswith(("call ", "empty_lookup", "ungrounded", "a "))
                    else f"call {k} ({name}) failed: {why}",
                    expected_outputs=outputs[:k],
                )
            )
            continue
        # refusal and auth failure: check_outcome proved that nothing changed
        final = initial_hash if inst.task_kind in ("refusal", "auth_failure") else recs[n - 1]["state_hash_after"]
        writes = sum(kinds[c.name] in WRITE_KINDS for c in inst.calls)
        tasks.append(
            Task(
                **base,
                status="valid",
                expected_outputs=outputs,
                final_state_hash=final,
                grounding=[{p: str(src) for p, src in g.items()} for g in grounded],
                expected_answer=expected_answer(inst, outputs),
                difficulty=Difficulty(
                    calls=n,
                    writes=writes,
                    lookups=sum(1 for g in grounded for src in g.values() if str(src).startswith("call:")),
                    domains=len({view.tool(c.name).domain for c in inst.calls}),
                ),
            )
        )
    return tasks


def run(ctx: StepContext, execute: Executor | None = None) -> None:
    env = ctx.wildcards.get("env") or ctx.wildcards.get("domain")
    reason = failed_input(ctx.inputs, TASK_INPUTS, "s16")
    if reason:
        ctx.write_json(
            "tasks",
            {
                "env": env,
                "status": "failed",
                "reason": reason,
                "tasks": [],
                "templates": [],
                "counts": {"instances": 0, "valid": 0, "invalid": 0},
            },
            SCHEMA,
        )
        return
    from agentskiller.runtime.environment import load_environment

    view = EnvView.load(env, ctx.inputs["blueprint"], ctx.inputs["server_report"])
    env_path = Path(
        ctx.inputs["server_report"]
        if not isinstance(ctx.inputs["server_report"], list)
        else ctx.inputs["server_report"][0]
    ).parent
    # loading data only (no generated code runs here): the hash every episode starts from
    initial_hash = load_environment(env_path).initial_state().hash()
    data = artifacts.read(ctx.inputs["instances"])
    instances = [Instance.model_validate(i) for i in data.get("instances", [])]
    execute = execute or sandboxed_executor(ctx.config["sandbox"])
    tasks = validate(view, env_path, instances, initial_hash, execute) if instances else []
    counts = {
        "instances": len(instances),
        "valid": sum(t.status == "valid" for t in tasks),
        "invalid": sum(t.status == "invalid" for t in tasks),
    }
    ctx.log.info("s16 %s: %s", env, counts)
    ctx.write_json(
        "tasks",
        {
            "env": env,
            "status": "ok",
            "initial_state_hash": initial_hash,
            "domains": view.domains,
            "cross_domain": view.cross_domain,
            "templates": data.get("templates", []),
            "history": {
                **data.get("history", {}),
                "s16": {
                    "counts": counts,
                    "rejections": [{"task_id": t.task_id, "reason": t.reason} for t in tasks if t.status == "invalid"],
                },
            },
            "tasks": [t.model_dump() for t in tasks],
            "counts": counts,
        },
        SCHEMA,
    )
