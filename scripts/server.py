"""Rule ``server`` (s09): write, test and repair the MCP tool code of one domain."""

from agentskiller.jobs import run_job
from agentskiller.steps.domains.s09_server import run

run_job(snakemake, run, step="s09")  # noqa: F821 - injected by Snakemake
