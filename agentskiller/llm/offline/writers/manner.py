"""How a persona's manner shows in the instruction the offline s17 user simulator writes: a
hurried or tired caller is brief (short identification, no reason, steps run together), a
chatty one adds a friendly sentence and a warm thanks, a formal one greets formally and
words requests as "I would like you to", an anxious one asks for reassurance
(:func:`style_for`; :mod:`.framing` applies it). No sentence here holds a value, a digit or
two capitalised words in a row, so none can fail the grounding check.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Style:
    """How a persona talks (s17): the extra sentences and wording its manner calls for."""

    short: bool = False  # hurried or tired: short identification, no context sentence, compact steps
    formal: bool = False
    extras: list[str] = field(default_factory=list)  # a sentence after the identification
    closings: list[str] = field(default_factory=list)
    context: float = 0.45  # how likely the reason is said


NEUTRAL = Style(context=0.0)
STYLES = {
    "hurried": Style(short=True, closings=["Thanks.", "Thanks!", "", ""], context=0.0),
    "tired": Style(
        short=True,
        extras=["It's been a long day, so I'd like to get this sorted quickly.", "I'll keep this short."],
        closings=["Thanks.", ""],
        context=0.15,
    ),
    "chatty": Style(
        extras=[
            "Hope your day is going well!",
            "Thanks for picking up, by the way.",
            "I hope you're having a good day.",
            "It's been a busy week, so I'm glad I caught you.",
            "I always find these calls a bit of a puzzle, so thanks for your patience.",
        ],
        closings=["Thanks so much, I really appreciate it!", "You're a star, thank you!", "Thanks a million!"],
        context=0.7,
    ),
    "formal": Style(
        formal=True,
        closings=["Thank you in advance.", "Thank you for your assistance.", "Many thanks.", ""],
        context=0.35,
    ),
    "anxious": Style(
        extras=[
            "I hope this isn't too complicated.",
            "I want to make sure this is done correctly.",
            "I'm a bit worried about getting this right.",
        ],
        closings=["Could you confirm once it's all done?", "Please let me know that it went through.", ""],
        context=0.6,
    ),
    "polite": Style(closings=["Thank you so much.", "Thanks for your help.", "Thank you!", ""], context=0.5),
    "cheerful": Style(
        extras=["Sorry, I'm not great with these things!", "Bear with me, I always mix these things up."],
        closings=["Thanks, you're a lifesaver!", "Thanks a lot!"],
        context=0.5,
    ),
    "plain": Style(closings=["", "", "Thanks."], context=0.4),
}


def style_for(manner: str) -> Style:
    """The :class:`Style` of a persona's manner ("in a hurry, short sentences" -> hurried)."""
    m = manner.lower()
    for key, words in (
        ("hurried", ("hurry", "brisk", "to the point")),
        ("tired", ("tired",)),
        ("chatty", ("chatty", "talkative")),
        ("formal", ("formal", "courteous")),
        ("anxious", ("anxious", "nervous", "worried")),
        ("cheerful", ("cheerful", "confused")),
        ("polite", ("polite", "patient")),
    ):
        if any(w in m for w in words):
            return STYLES[key]
    return STYLES["plain"]
