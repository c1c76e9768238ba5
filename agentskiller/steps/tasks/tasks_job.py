"""The ``tasks`` job: s14 templates, s15 instances and s16 golden-call filtering of one env.

Three steps in one job because each is a fraction of a second of work next to an interpreter's
start-up, and the only consumer of s14's and s15's artifacts is the next of the three, so a
change to any of them reruns s16 anyway: merging loses no incremental rebuild. (An edit of s15
or s16 now also repeats s14, whose judge calls the LLM cache answers.) Each step still runs as
itself (:func:`agentskiller.jobs.run_steps`): byte for byte the artifacts three jobs would write.
"""

from __future__ import annotations

from agentskiller.jobs import StepContext, Substep, run_steps
from agentskiller.steps.tasks import s14_templates, s15_instances, s16_tasks

STEPS = (
    Substep("s14", s14_templates.run, ("blueprint", "tool_graph", "policy", "server_report"), ("templates",)),
    Substep(
        "s15",
        s15_instances.run,
        ("templates", "blueprint", "db", "entity_tables", "server_report", "policy_report"),
        ("instances",),
    ),
    Substep(
        "s16", s16_tasks.run, ("instances", "blueprint", "server_report", "tools", "db", "entity_tables"), ("tasks",)
    ),
)


def run(ctx: StepContext) -> None:
    """s14, s15, s16 in order, each on the artifact the one before it just wrote."""
    run_steps(ctx, STEPS)
