"""Offline answers for s04: domain outlines per person and the full blueprint per domain.

``s04.outlines`` picks domain ideas of the person's topics from the catalogue
(:mod:`..writers.outlines`); ``s04.blueprint_detail`` turns an outline into a blueprint in the
shape of :class:`agentskiller.models.blueprint.Blueprint` (:mod:`..writers.blueprint`). When the
step reports problems (``req.feedback``, lines ``"[code] ..."``), the previous answer is read
back from the conversation and repaired for each named code (:mod:`..writers.blueprint_repair`),
as a model following the feedback would.
"""

from __future__ import annotations

from ..provider import OfflineRequest, handler
from ..writers.blueprint import build_blueprint
from ..writers.blueprint_repair import codes_of, previous_answer, repair
from ..writers.outlines import pick_outlines


@handler("s04.outlines")
def outlines(req: OfflineRequest) -> dict:
    """Context: person {name, description, topics}, neighbours [{name, ...}], count,
    max_peripheral. Answer: {"outlines": [Outline, ...]}."""
    return {"outlines": pick_outlines(req.context, req.catalog, req.rng)}


@handler("s04.blueprint_detail")
def blueprint_detail(req: OfflineRequest) -> dict:
    """Context: outline, entities {name: Entity}, limits. Answer: a Blueprint dict."""
    if req.feedback:
        prev = previous_answer(req.messages)
        if prev is not None and codes_of(req.feedback):
            return repair(req, prev)
    return build_blueprint(req)
