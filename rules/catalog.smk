# s01-s04: topics, entity catalogue, entity graph, MCP server blueprints.


rule topics:
    output:
        topics=out("topics.json"),
    params:
        code=code_version(
            "steps/s01_topics.py",
            "prompts/s01.yaml",
            "llm/offline/handlers/s01_*.py",
            "llm/offline/catalog/*.yaml",
        ),
    log:
        "logs/topics/topics.log",
    benchmark:
        "benchmarks/topics/topics.tsv"
    resources:
        llm=1,
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/topics.py"


rule entities:
    input:
        topics=rules.topics.output.topics,
    output:
        entities=out("entities.json"),
    params:
        code=code_version(
            "steps/s02_entities.py",
            "prompts/s02.yaml",
            "llm/offline/handlers/s02_*.py",
            "llm/offline/catalog/*.yaml",
            "models/catalog.py",
        ),
    log:
        "logs/entities/entities.log",
    benchmark:
        "benchmarks/entities/entities.tsv"
    resources:
        llm=1,
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/entities.py"


rule entity_graph:
    input:
        entities=rules.entities.output.entities,
    output:
        graph=out("entity_graph.json"),
    params:
        code=code_version(
            "steps/s03_entity_graph.py",
            "prompts/s03.yaml",
            "llm/offline/handlers/s03_*.py",
            "llm/offline/catalog/*.yaml",
        ),
    log:
        "logs/entity_graph/entity_graph.log",
    benchmark:
        "benchmarks/entity_graph/entity_graph.tsv"
    resources:
        llm=1,
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/entity_graph.py"


# Defines the {domain} wildcard: downstream input functions read its output.
checkpoint outlines:
    input:
        entities=rules.entities.output.entities,
        graph=rules.entity_graph.output.graph,
    output:
        outlines=out("blueprints/outlines.json"),
    params:
        code=code_version(
            "steps/s04_blueprints.py",
            "prompts/s04.yaml",
            "llm/offline/handlers/s04_*.py",
            "llm/offline/phrasing.py",
            "llm/offline/catalog/*.yaml",
        ),
    log:
        "logs/outlines/outlines.log",
    benchmark:
        "benchmarks/outlines/outlines.tsv"
    resources:
        llm=1,
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/outlines.py"


rule blueprint:
    input:
        outlines=out("blueprints/outlines.json"),
        entities=rules.entities.output.entities,
    output:
        blueprint=out("blueprints/{domain}.json"),
    params:
        code=code_version(
            "steps/s04_blueprints.py",
            "steps/blueprint_checks.py",
            "prompts/s04.yaml",
            "llm/offline/handlers/s04_*.py",
            "llm/offline/phrasing.py",
            "llm/offline/catalog/*.yaml",
            "models/*.py",
        ),
    log:
        "logs/blueprint/{domain}.log",
    benchmark:
        "benchmarks/blueprint/{domain}.tsv"
    resources:
        llm=1,
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/blueprint.py"


rule blueprint_index:
    input:
        outlines=out("blueprints/outlines.json"),
        blueprints=all_blueprints,
    output:
        index=report(
            out("blueprints/index.json"), caption="../report/blueprint_index.rst", category="Blueprints"
        ),
    params:
        code=code_version("steps/s04_blueprints.py"),
    log:
        "logs/blueprint_index/index.log",
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/blueprint_index.py"


rule tool_list:
    input:
        blueprint=out("blueprints/{domain}.json"),
    output:
        tool_list=out("tool_lists/{domain}.json"),
    params:
        code=code_version("steps/s05_tool_lists.py"),
    log:
        "logs/tool_list/{domain}.log",
    conda:
        "../envs/agentskiller.yaml"
    script:
        "../scripts/tool_list.py"
