from agentskiller.jobs import run_job
from agentskiller.steps.tasks import dataset

run_job(snakemake, dataset.card_run, step="dataset_card")  # noqa: F821 (snakemake is injected)
