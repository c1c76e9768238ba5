"""Rule ``fuse`` (s11, s12, s13): a pair's fused trajectories, fused database and merged policy."""

from agentskiller.jobs import run_job
from agentskiller.steps.cross import fuse_job

run_job(snakemake, fuse_job.run, step="s11-s13")  # noqa: F821 (snakemake is injected)
