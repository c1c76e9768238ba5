from agentskiller.jobs import run_job
from agentskiller.steps.catalog import s04_blueprints

run_job(snakemake, s04_blueprints.run_index, step="s04")  # noqa: F821 (snakemake is injected)
