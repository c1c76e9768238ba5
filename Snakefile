# AgentSkiller on Snakemake: synthesize executable tool-use environments and verified tasks.
# See README.md for usage, config/README.md for every config key, docs/rules.md for the DAG.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/catalog.smk"
include: "rules/domains.smk"
include: "rules/cross.smk"
include: "rules/tasks.smk"


rule all:
    default_target: True
    input:
        get_final_outputs,
