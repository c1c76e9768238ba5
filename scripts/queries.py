from agentskiller.jobs import run_job
from agentskiller.steps.tasks import s17_queries

run_job(snakemake, s17_queries.run, step="s17")  # noqa: F821 (snakemake is injected)
