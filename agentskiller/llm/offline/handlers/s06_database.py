"""Offline answers for s06: the generator scripts the code model would write.

``s06.entity_script`` gets ``{"entity", "records", "seed", "simulation_time"}``;
``s06.relationship_script`` gets ``{"relationship", "entities", "records", "seed",
"simulation_time", "lifecycle"?, "scheduled"?, "window"?, ...}`` (``entities``: definitions of
the referenced entities; ``scheduled``: the scheduled column and its status windows;
``window``: the check-in window a check-in tool needs records in). Both answer
with one fenced Python block written by :mod:`..codegen_data` / :mod:`..codegen_relations`,
with names from the catalogue's vocabulary of the table (the offline "model" knows real
product and service names).

Repair rounds (``req.feedback`` non-empty: the sandbox run or the data checks failed) are
answered by writing the script again from the definition. The writer is deterministic and
already honours every rule the checks test, so the rewrite is the correct script; this is
the honest offline stand-in for "read the errors, fix the script".
"""

from __future__ import annotations

from .. import handler
from ..codegen_data import entity_script as write_entity_script
from ..codegen_data import fenced
from ..codegen_relations import relationship_script as write_relationship_script
from ..provider import OfflineRequest


@handler("s06.entity_script")
def entity_script(req: OfflineRequest) -> str:
    c = req.context
    vocabulary = req.catalog.vocabulary_for(c["entity"].get("name", ""))
    code = write_entity_script(c["entity"], int(c["records"]), int(c["seed"]), c["simulation_time"], vocabulary)
    return _answer(code, req)


@handler("s06.relationship_script")
def relationship_script(req: OfflineRequest) -> str:
    c = req.context
    code = write_relationship_script(
        c["relationship"],
        c["entities"],
        int(c["records"]),
        int(c["seed"]),
        c["simulation_time"],
        scheduled=c.get("scheduled"),
        lifecycle=c.get("lifecycle"),
        window=c.get("window"),
        vocabulary=req.catalog.vocabulary_for(c["relationship"].get("name", "")),
    )
    return _answer(code, req)


def _answer(code: str, req: OfflineRequest) -> str:
    if req.feedback:
        intro = (
            "The previous script failed the checks; this version is rewritten from the definition so that "
            "every listed problem is addressed.\n\n"
        )
    else:
        intro = "Here is the seeded generator script.\n\n"
    return intro + fenced(code)
