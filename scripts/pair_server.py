from agentskiller.jobs import run_job
from agentskiller.steps.cross import pair_server

run_job(snakemake, pair_server.run, step="pair_server")  # noqa: F821 (snakemake is injected)
