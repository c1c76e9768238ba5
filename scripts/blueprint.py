"""Rule ``blueprint`` (s04 detail, then s05): a domain's blueprint and its tool list."""

from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s05_tool_lists

run_job(snakemake, s05_tool_lists.run_after_blueprint, step="s04-s05")  # noqa: F821 (snakemake is injected)
