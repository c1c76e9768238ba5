from agentskiller.jobs import run_job
from agentskiller.steps.rollout import trajectories

run_job(snakemake, trajectories.run, step="trajectories")  # noqa: F821 (snakemake is injected)
