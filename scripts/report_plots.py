from agentskiller.jobs import run_job
from agentskiller.reporting import build

run_job(snakemake, build.run, step="report")  # noqa: F821 (snakemake is injected)
