from agentskiller.jobs import run_job
from agentskiller.steps.rollout import evaluation

run_job(snakemake, evaluation.run, step="evaluate")  # noqa: F821 (snakemake is injected)
