"""Repair of a blueprint the s04 checks rejected, as a model following the feedback would.

The feedback names problem classes (lines ``"[code] ..."``); each fix below answers one code
and leaves the blueprint alone when its code is absent. Fixes run in a fixed order, coarse to
fine: the blueprint's domain and entities, then each relationship table's columns, then the
tool set, then each tool, then names and the minimum tool count (tools are rebuilt against the
repaired tables, so the table fixes come first).
"""

from __future__ import annotations

from collections.abc import Callable

from ...extract import extract_json
from ..provider import OfflineRequest
from .blueprint_draft import Draft, codes_of
from .blueprint_table_fixes import (
    fix_column_bound,
    fix_core_not_in_relationship,
    fix_duplicate_table,
    fix_enum_columns,
    fix_fk_name,
    fix_outline_mismatch,
    fix_relationship_pk,
    fix_server_name,
    fix_too_many_peripherals,
    fix_too_many_relationships,
    fix_unknown_entity,
    fix_unknown_reference,
)
from .blueprint_tool_fixes import (
    fix_aggregate,
    fix_authorize,
    fix_create_incomplete,
    fix_enum_value,
    fix_missing_pk_param,
    fix_param_type,
    fix_reads_writes,
    fix_too_few_tools,
    fix_tool_names,
    fix_unbound_param,
    fix_unknown_table,
)

__all__ = ["codes_of", "previous_answer", "repair"]


def previous_answer(messages: list[dict]) -> dict | None:
    """The blueprint of the last assistant message, or None when it holds no JSON object."""
    for m in reversed(messages):
        if m.get("role") == "assistant":
            try:
                data = extract_json(m.get("content") or "")
            except Exception:
                return None
            return data if isinstance(data, dict) else None
    return None


BLUEPRINT_FIXES: tuple[Callable[[Draft], None], ...] = (
    fix_outline_mismatch,
    fix_server_name,
    fix_unknown_entity,
    fix_too_many_peripherals,
    fix_too_many_relationships,
    fix_duplicate_table,
)
RELATIONSHIP_FIXES: tuple[Callable[[Draft, dict], None], ...] = (
    fix_unknown_reference,
    fix_fk_name,
    fix_relationship_pk,
    fix_core_not_in_relationship,
    fix_enum_columns,
    fix_column_bound,
)
TOOL_SET_FIXES: tuple[Callable[[Draft], None], ...] = (fix_unknown_table, fix_authorize, fix_aggregate)
TOOL_FIXES: tuple[Callable[[Draft, dict], None], ...] = (
    fix_reads_writes,
    fix_unbound_param,
    fix_param_type,
    fix_enum_value,
    fix_missing_pk_param,
    fix_create_incomplete,
)
FINAL_FIXES: tuple[Callable[[Draft], None], ...] = (fix_tool_names, fix_too_few_tools)


def repair(req: OfflineRequest, bp: dict) -> dict:
    """Fix every problem class named in ``req.feedback`` on the previous blueprint ``bp``."""
    d = Draft(req, bp)
    for fix in BLUEPRINT_FIXES:
        fix(d)
    d.ents = [d.core, *d.bp.get("peripheral_entities", [])]
    for rel in d.bp["relationships"]:
        rel.setdefault("columns", [])
        for fix_rel in RELATIONSHIP_FIXES:
            fix_rel(d, rel)
    d.index_tables()
    for fix in TOOL_SET_FIXES:
        fix(d)
    for t in d.tools:
        for fix_tool in TOOL_FIXES:
            fix_tool(d, t)
    for fix in FINAL_FIXES:
        fix(d)
    d.bp["tools"] = d.tools
    return d.bp
