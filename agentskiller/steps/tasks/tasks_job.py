"""The ``tasks`` job: s14 templates, s15 instances and s16 golden-call filtering of one env.

Three steps in one job because each is a fraction of a second of work next to an interpreter's
start-up, and the only consumer of s14's and s15's artifacts is the next of the three, so a
change to any of them reruns s16 anyway: merging loses no incremental rebuild. (An edit of s15
or s16 now also repeats s14, whose judge calls the LLM cache answers.) Each step still runs as
itself: its own step name and only its own inputs in ``meta``, byte for byte the artifacts that
three jobs would write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentskiller.jobs import StepContext
from agentskiller.steps.tasks import s14_templates, s15_instances, s16_tasks

#: each step's named inputs among the job's, in the order its meta lists their hashes; s15 and
#: s16 read the artifact of the step before them, which is an output of this job
STEP_INPUTS = {
    "s14": ("blueprint", "tool_graph", "policy", "server_report"),
    "s15": ("templates", "blueprint", "db", "entity_tables", "server_report", "policy_report"),
    "s16": ("instances", "blueprint", "server_report", "tools", "db", "entity_tables"),
}
STEP_OUTPUT = {"s14": "templates", "s15": "instances", "s16": "tasks"}
STEPS: dict[str, Callable[[StepContext], None]] = {
    "s14": s14_templates.run,
    "s15": s15_instances.run,
    "s16": s16_tasks.run,
}


def step_context(ctx: StepContext, step: str) -> StepContext:
    """The context ``step`` would get as a job of its own (the same wildcards, config, log)."""
    files: dict[str, Any] = {**ctx.inputs, **ctx.outputs}
    return StepContext.from_paths(
        step,
        ctx.config,
        inputs={k: files[k] for k in STEP_INPUTS[step] if k in files},
        outputs={STEP_OUTPUT[step]: files[STEP_OUTPUT[step]]},
        params=ctx.params,
        wildcards=ctx.wildcards,
        logger=ctx.log,
    )


def run(ctx: StepContext) -> None:
    """s14, s15, s16 in order, each on the artifact the one before it just wrote."""
    for step, fn in STEPS.items():
        sub = step_context(ctx, step)
        try:
            fn(sub)
        finally:
            if sub._llm is not None:
                sub._llm.close()
