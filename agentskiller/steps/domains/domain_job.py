"""The ``domain`` job: s06's relationship tables, s07's policy and s08's tool graph of a domain.

Three steps in one job because each is a fraction of a second of work next to an interpreter's
start-up, and nothing reads the database that does not also read the policy written from it
(the server, the tasks, a pair's fusion), so whatever reruns s06 reran all of them before. An
s07 or s08 change now also repeats s06 (its generator scripts come from the LLM cache and run
again, sandboxed), and an s08 change repeats s07. Each step still runs as itself
(:func:`agentskiller.jobs.run_steps`): byte for byte the artifacts three jobs would write.
"""

from __future__ import annotations

from agentskiller.jobs import StepContext, Substep, run_steps
from agentskiller.steps.domains import s06_database, s07_policy, s08_tool_graph

STEPS = (
    Substep("s06", s06_database.run_domain, ("blueprint", "entities", "entity_tables"), ("db",)),
    Substep("s07", s07_policy.run, ("blueprint", "entities", "db"), ("policy", "report")),
    Substep("s08", s08_tool_graph.run, ("blueprint", "policy", ("policy_report", "report")), ("graph",)),
)


def run(ctx: StepContext) -> None:
    """s06 (the domain's part), s07, s08 in order, each on what the one before wrote."""
    run_steps(ctx, STEPS)
