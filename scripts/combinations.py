from agentskiller.jobs import run_job
from agentskiller.steps.cross import s10_combinations

run_job(snakemake, s10_combinations.run, step="s10")  # noqa: F821 (snakemake is injected)
