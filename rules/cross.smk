# s10-s13: cross-domain pairs of domains that share a core person, and their MCP servers.
# {pair} = member domains sorted and joined by "+"; it ranges over the kept pairs of the
# combinations checkpoint (see envs() in common.smk).


checkpoint combinations:
    input:
        index=out("blueprints/index.json"),
        blueprints=all_blueprints,
        server_reports=per_domain("servers/{domain}/report.json"),
        tasks=per_domain("tasks/{domain}.json"),
    output:
        combinations=report(
            out("cross/combinations.json"), caption="../report/combinations.rst", category="Cross-domain"
        ),
    log:
        "logs/combinations/combinations.log",
    benchmark:
        "logs/benchmarks/combinations/combinations.tsv"
    params:
        cfg=config_for("cross.enabled", "cross.max_pairs", "cross.min_member_tasks"),
        code=code_version("scripts/combinations.py"),
    script:
        "../scripts/combinations.py"


# s11, s12 and s13 in one job (agentskiller/steps/cross/fuse_job.py): each is a fraction of a
# second of work, and what reruns one reruns the pair server and the pair's tasks anyway. Each
# still writes its own artifact and meta.
rule fuse:
    input:
        # ancient: s10 rewrites combinations.json whenever any domain changes; what s11 reads
        # from it (the pair's core entity) comes from the member files below, so only those
        # may rerun a pair (a deleted domain reruns its own pairs, not every pair)
        combos=ancient(out("cross/combinations.json")),
        entities=out("entities.json"),
        blueprints=pair_members_file("blueprints/{domain}.json"),
        tool_graphs=pair_members_file("tool_graphs/{domain}.json"),
        tasks=pair_members_file("tasks/{domain}.json"),
        policies=pair_members_file("policies/{domain}.md"),
        dbs=pair_members_file("database/{domain}"),
        entity_tables=domain_entity_tables,
        policy_reports=pair_members_file("policies/{domain}.json"),
    output:
        graph=out("cross/{pair}/tool_graph.json"),
        db=directory(out("cross/{pair}/database")),
        policy=out("cross/{pair}/policy.md"),
        report=out("cross/{pair}/policy.json"),
    log:
        "logs/fuse/{pair}.log",
    benchmark:
        "logs/benchmarks/fuse/{pair}.tsv"
    localrule: LLM_ON_SUBMIT_HOST
    threads: LLM_THREADS
    resources:
        llm=1,
    params:
        cfg=config_for(
            "tool_graph.max_length",
            "tool_graph.max_trajectories",
            "cross.max_length",
            "simulation_time",
            "policy",
            llm=True,
        ),
        code=code_version("scripts/fuse.py"),
    script:
        "../scripts/fuse.py"


rule pair_server:
    input:
        blueprints=pair_members_file("blueprints/{domain}.json"),
        server_reports=pair_members_file("servers/{domain}/report.json"),
        tools=pair_members_file("servers/{domain}/tools.py"),
        tool_lists=pair_members_file("tool_lists/{domain}.json"),
        db=out("cross/{pair}/database"),
        # the Bridge Rules the server enforces: derived from the fused links, stated in s13
        graph=out("cross/{pair}/tool_graph.json"),
        policy_report=out("cross/{pair}/policy.json"),
        # member tasks give the Bridge Rule tests valid arguments for writes and ordered steps
        tasks=pair_members_file("tasks/{domain}.json"),
    output:
        report=out("cross/{pair}/server/report.json"),
        tool_list=out("cross/{pair}/tool_list.json"),
    log:
        "logs/pair_server/{pair}.log",
    benchmark:
        "logs/benchmarks/pair_server/{pair}.tsv"
    params:
        cfg=config_for("simulation_time", "sandbox"),
        code=code_version("scripts/pair_server.py"),
    script:
        "../scripts/pair_server.py"
