from agentskiller.jobs import run_job
from agentskiller.steps.domains import s08_tool_graph

run_job(snakemake, s08_tool_graph.run, step="s08")  # noqa: F821 (snakemake is injected)
