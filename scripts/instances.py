from agentskiller.jobs import run_job
from agentskiller.steps.tasks import s15_instances

run_job(snakemake, s15_instances.run, step="s15")  # noqa: F821 (snakemake is injected)
