from agentskiller.jobs import run_job
from agentskiller.steps.cross import s13_policy_merge

run_job(snakemake, s13_policy_merge.run, step="s13")  # noqa: F821 (snakemake is injected)
