"""Offline answers for s14: a template writer and an honest judge.

``s14.template`` writes a first-person instruction and a reason for the call from the
trajectory (:mod:`..writers.template`, worded by :mod:`..writers.wording`); with some
probability the first draft is terse and leaves out a value the trajectory needs, and a repair
round writes the careful variant. ``s14.judge`` checks a template against the criteria the
prompt states (:mod:`..writers.template_judge`), so such a draft fails on trajectory
faithfulness.
"""

from __future__ import annotations

from ..provider import OfflineRequest, handler
from ..writers.template import write_template
from ..writers.template_judge import judge_template


@handler("s14.template")
def template(req: OfflineRequest) -> dict:
    """Context: slots, trajectory, core_entity, domains. Answer: {instruction, reason_for_call, user_holds}."""
    return write_template(req.context, req.rng, repairing=bool(req.feedback))


@handler("s14.judge")
def judge(req: OfflineRequest) -> dict:
    """Context: slots, template, trajectory, criteria. Answer: a score per criterion and the problems."""
    return judge_template(req.context)
