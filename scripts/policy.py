from agentskiller.jobs import run_job
from agentskiller.steps.domains import s07_policy

run_job(snakemake, s07_policy.run, step="s07")  # noqa: F821 (snakemake is injected)
