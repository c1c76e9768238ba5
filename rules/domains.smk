# s06-s09: entity tables; each domain's database, policy and tool graph (one job) and MCP server.


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


# s06 (the domain's relationship tables), s07 and s08 in one job
# (agentskiller/steps/domains/domain_job.py): each is a fraction of a second of work, and all
# that reads the database also reads the policy written from it. Each writes its own artifact.
rule domain:
    input:
        blueprint=out("blueprints/{domain}.json"),
        entities=out("entities.json"),
        entity_tables=domain_entity_tables,
    output:
        db=directory(out("database/{domain}")),
        policy=out("policies/{domain}.md"),
        report=out("policies/{domain}.json"),
        graph=out("tool_graphs/{domain}.json"),
    log:
        "logs/domain/{domain}.log",
    benchmark:
        "logs/benchmarks/domain/{domain}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for(
            "simulation_time",
            "sandbox",
            "database.relationship_records",
            "database.max_repair_rounds",
            "policy",
            "tool_graph",
            "tasks.kinds.lookup",
            llm=True,
        ),
        code=code_version("scripts/domain.py"),
    script:
        "../scripts/domain.py"


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
