"""Rule ``domain`` (s06, s07, s08): a domain's database, its policy and its tool graph."""

from agentskiller.jobs import run_job
from agentskiller.steps.domains import domain_job

run_job(snakemake, domain_job.run, step="s06-s08")  # noqa: F821 (snakemake is injected)
