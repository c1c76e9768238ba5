"""The ``fuse`` job: s11 trajectory fusion, s12 database fusion and s13 policy merge of a pair.

Three steps in one job because each is a fraction of a second of work next to an interpreter's
start-up, and whatever reruns one of them reruns the pair server and the pair's tasks anyway
(they read all three artifacts, and the members' tasks that s11 reads). An s12 or s13 change
now also repeats s11, and the other way round; their LLM calls the cache answers. Each step
still runs as itself (:func:`agentskiller.jobs.run_steps`): byte for byte the artifacts three
jobs would write. s13 reads s11's fused graph (its links give the ordering Bridge Rules).
"""

from __future__ import annotations

from agentskiller.jobs import StepContext, Substep, run_steps
from agentskiller.steps.cross import s11_trajectory_fusion, s12_database_fusion, s13_policy_merge

STEPS = (
    Substep(
        "s11",
        s11_trajectory_fusion.run,
        ("combos", "entities", "blueprints", "tool_graphs", "tasks", "policies"),
        ("graph",),
    ),
    Substep("s12", s12_database_fusion.run, ("blueprints", "dbs", "entity_tables"), ("db",)),
    Substep(
        "s13",
        s13_policy_merge.run,
        ("blueprints", "policies", "policy_reports", "entities", "graph"),
        ("policy", "report"),
    ),
)


def run(ctx: StepContext) -> None:
    """s11, s12, s13 of one pair in order."""
    run_steps(ctx, STEPS)
