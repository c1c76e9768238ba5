from agentskiller.jobs import run_job
from agentskiller.steps.rollout import rollouts

run_job(snakemake, rollouts.run, step="rollout")  # noqa: F821 (snakemake is injected)
