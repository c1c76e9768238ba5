from agentskiller.jobs import run_job
from agentskiller.steps.cross import s11_trajectory_fusion

run_job(snakemake, s11_trajectory_fusion.run, step="s11")  # noqa: F821 (snakemake is injected)
