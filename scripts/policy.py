"""Rule ``policy`` (s07, then s08): a domain's policy and the tool graph that follows it."""

from agentskiller.jobs import run_job
from agentskiller.steps.domains import s08_tool_graph

run_job(snakemake, s08_tool_graph.run_after_policy, step="s07")  # noqa: F821 (snakemake is injected)
