from agentskiller.jobs import run_job
from agentskiller.steps.domains import s06_database

run_job(snakemake, s06_database.run_domain, step="s06")  # noqa: F821 (snakemake is injected)
