# s06-s09: database, policy and tool graph (one job), and MCP server of each domain.


rule entity_table:
    input:
        entities=out("entities.json"),
    output:
        table=out("database/entities/{entity}.json"),
        script=out("database/scripts/entities/{entity}.py"),
    log:
        "logs/entity_table/{entity}.log",
    benchmark:
        "logs/benchmarks/entity_table/{entity}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("simulation_time", "sandbox", "database.entity_records", "database.max_repair_rounds", llm=True),
        code=code_version("scripts/entity_table.py"),
    script:
        "../scripts/entity_table.py"


rule domain_database:
    input:
        blueprint=out("blueprints/{domain}.json"),
        entities=out("entities.json"),
        entity_tables=domain_entity_tables,
    output:
        db=directory(out("database/{domain}")),
    log:
        "logs/domain_database/{domain}.log",
    benchmark:
        "logs/benchmarks/domain_database/{domain}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for(
            "simulation_time", "sandbox", "database.relationship_records", "database.max_repair_rounds", llm=True
        ),
        code=code_version("scripts/domain_database.py"),
    script:
        "../scripts/domain_database.py"


# s07 and s08 in one job: s08 is a fraction of a second of work and reads only the blueprint
# and this policy, so an s07 change reruns it anyway; each writes its own artifact and meta.
rule policy:
    input:
        blueprint=out("blueprints/{domain}.json"),
        entities=out("entities.json"),
        db=out("database/{domain}"),
    output:
        policy=out("policies/{domain}.md"),
        report=out("policies/{domain}.json"),
        graph=out("tool_graphs/{domain}.json"),
    log:
        "logs/policy/{domain}.log",
    benchmark:
        "logs/benchmarks/policy/{domain}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("simulation_time", "policy", "tool_graph", "tasks.kinds.lookup", llm=True),
        code=code_version("scripts/policy.py"),
    script:
        "../scripts/policy.py"


rule server:
    input:
        blueprint=out("blueprints/{domain}.json"),
        tool_list=out("tool_lists/{domain}.json"),
        policy=out("policies/{domain}.md"),
        policy_report=out("policies/{domain}.json"),
        db=out("database/{domain}"),
        entity_tables=domain_entity_tables,
    output:
        tools=out("servers/{domain}/tools.py"),
        report=out("servers/{domain}/report.json"),
    log:
        "logs/server/{domain}.log",
    benchmark:
        "logs/benchmarks/server/{domain}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for("simulation_time", "sandbox", "server", llm=True),
        code=code_version("scripts/server.py"),
    script:
        "../scripts/server.py"
