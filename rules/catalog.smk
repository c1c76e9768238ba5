# s01-s05: topics, entity catalogue, entity graph, MCP server blueprints and their tool lists
# (s05 runs in the blueprint job).


rule topics:
    output:
        topics=out("topics.json"),
    log:
        "logs/topics/topics.log",
    benchmark:
        "logs/benchmarks/topics/topics.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("topics", llm=True),
        code=code_version("scripts/topics.py"),
    script:
        "../scripts/topics.py"


rule entities:
    input:
        topics=rules.topics.output.topics,
    output:
        entities=out("entities.json"),
    log:
        "logs/entities/entities.log",
    benchmark:
        "logs/benchmarks/entities/entities.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("entities", llm=True),
        code=code_version("scripts/entities.py"),
    script:
        "../scripts/entities.py"


rule entity_graph:
    input:
        entities=rules.entities.output.entities,
    output:
        graph=out("entity_graph.json"),
    log:
        "logs/entity_graph/entity_graph.log",
    benchmark:
        "logs/benchmarks/entity_graph/entity_graph.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("entity_graph", llm=True),
        code=code_version("scripts/entity_graph.py"),
    script:
        "../scripts/entity_graph.py"


# Defines the {domain} wildcard: downstream input functions read its output.
checkpoint outlines:
    input:
        entities=rules.entities.output.entities,
        graph=rules.entity_graph.output.graph,
    output:
        outlines=out("blueprints/outlines.json"),
    log:
        "logs/outlines/outlines.log",
    benchmark:
        "logs/benchmarks/outlines/outlines.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("blueprints", llm=True),
        code=code_version("scripts/outlines.py"),
    script:
        "../scripts/outlines.py"


rule blueprint:
    input:
        outlines=out("blueprints/outlines.json"),
        entities=rules.entities.output.entities,
    output:
        blueprint=out("blueprints/{domain}.json"),
        # s05 in the same job: a deterministic rendering of the blueprint (milliseconds of
        # work, too small for a job of its own); its artifact and meta are those of s05
        tool_list=out("tool_lists/{domain}.json"),
    log:
        "logs/blueprint/{domain}.log",
    benchmark:
        "logs/benchmarks/blueprint/{domain}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("blueprints.min_tools", "blueprints.max_peripheral", "blueprints.max_relationships", llm=True),
        code=code_version("scripts/blueprint.py"),
    script:
        "../scripts/blueprint.py"


rule blueprint_index:
    input:
        outlines=out("blueprints/outlines.json"),
        blueprints=all_blueprints,
    output:
        index=report(out("blueprints/index.json"), caption="../report/blueprint_index.rst", category="Blueprints"),
    log:
        "logs/blueprint_index/index.log",
    benchmark:
        "logs/benchmarks/blueprint_index/index.tsv"
    localrule: True
    params:
        cfg=config_for(),
        code=code_version("scripts/blueprint_index.py"),
    script:
        "../scripts/blueprint_index.py"
