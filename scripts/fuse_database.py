from agentskiller.jobs import run_job
from agentskiller.steps.cross import s12_database_fusion

run_job(snakemake, s12_database_fusion.run, step="s12")  # noqa: F821 (snakemake is injected)
