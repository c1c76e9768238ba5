"""s16 task filtering: execute every instance's golden calls on a fresh state.

All instances of an env run in one sandboxed worker process per pass
(``runtime.worker.execute_episodes``), each episode on its own fresh copy of the initial
state. Arguments that only exist at execution time (the ID a create returned) carry a
``resolve`` rule ``{call, field}``; they are filled from that call's result. Since the
runtime's IDs are deterministic per state, an episode's prefix replays identically, so a
pass runs each episode up to its first unresolved call, the rule is applied to the result,
and the next pass runs the longer prefix. Every replay (the dataset test, the evaluator)
applies the same rule and reaches the same values.

A task is valid only if every call succeeds and every write call (create, update, delete)
really changes the state hash. Valid tasks record the expected outputs and the final state
hash; invalid ones keep the failing call and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import failed_input
from agentskiller.jobs import StepContext
from agentskiller.models.blueprint import WRITE_KINDS
from agentskiller.models.tasks import GoldenCall, Instance, Task
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


def validate(
    view: EnvView, env_path: Path, instances: list[Instance], initial_hash: str, execute: Executor
) -> list[Task]:
    """Run the golden calls of ``instances``; one :class:`Task` per instance."""
    kinds = {name: view.tool(name).tool.kind for inst in instances for name in (c.name for c in inst.calls)}
    results: dict[str, list[dict]] = {i.instance_id: [] for i in instances}
    args: dict[str, list[dict]] = {}
    failed: dict[str, tuple[int, str]] = {}
    pending = list(instances)
    while pending:
        batch = []
        for inst in pending:
            known = [r.get("result") for r in results[inst.instance_id]]
            try:
                prefix = apply_resolves(inst.calls, known)
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
            bad = next((i for i, r in enumerate(recs) if not r.get("ok")), None)
            if bad is not None:
                r = recs[bad]
                failed[inst.instance_id] = (bad, f"{r.get('error_type') or 'error'}: {r.get('error')}")
            elif len(recs) < len(prefix):
                failed[inst.instance_id] = (len(recs), "the episode ended early")
            elif len(prefix) < len(inst.calls):
                pending.append(inst)  # a later call needs this prefix's results
    tasks = []
    for inst in instances:
        tid = io.sha256_json({"env": view.env, "instance": inst.instance_id})[:16]
        recs = results[inst.instance_id]
        golden = [GoldenCall(name=c.name, arguments=c.arguments, resolve=c.resolve) for c in inst.calls]
        base = dict(
            task_id=tid,
            template_id=inst.template_id,
            instance_id=inst.instance_id,
            golden_calls=golden,
            user_id=inst.user_id,
            values=inst.values,
            records=inst.records,
            initial_state_hash=initial_hash,
        )
        if inst.instance_id in failed:
            k, why = failed[inst.instance_id]
            tasks.append(
                Task(
                    **base,
                    status="invalid",
                    failing_call=k,
                    reason=f"call {k} ({inst.calls[k].name if k < len(inst.calls) else '?'}) failed: {why}",
                    expected_outputs=[r.get("result") for r in recs[:k]],
                )
            )
            continue
        prev = initial_hash
        reason, failing = None, None
        for i, r in enumerate(recs):
            after = r.get("state_hash_after")
            if kinds[inst.calls[i].name] in WRITE_KINDS and after == prev:
                reason, failing = f"call {i} ({inst.calls[i].name}) is a write that did not change the state", i
                break
            prev = after
        if reason:
            tasks.append(
                Task(
                    **base,
                    status="invalid",
                    failing_call=failing,
                    reason=reason,
                    expected_outputs=[r.get("result") for r in recs],
                )
            )
            continue
        tasks.append(
            Task(
                **base,
                status="valid",
                expected_outputs=[r.get("result") for r in recs],
                final_state_hash=recs[-1]["state_hash_after"],
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
