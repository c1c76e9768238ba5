"""Step logic, one module per workflow step (``run(ctx)`` per rule; see docs/rules.md).

Steps import ``llm``, ``runtime``, ``models`` and ``io``; never ``snakemake``. Each step
reads its named inputs from ``ctx.inputs``, writes its named outputs through
``ctx.write_json`` (schema-validated, atomic, with ``meta``) and is deterministic for a
given seed.
"""
