from agentskiller.jobs import run_job
from agentskiller.steps.tasks import dataset

run_job(snakemake, dataset.run, step="dataset")  # noqa: F821 (snakemake is injected)
