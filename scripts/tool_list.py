from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s05_tool_lists

run_job(snakemake, s05_tool_lists.run, step="s05")  # noqa: F821 (snakemake is injected)
