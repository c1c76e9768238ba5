from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s02_entities

run_job(snakemake, s02_entities.run, step="s02")  # noqa: F821 (snakemake is injected)
