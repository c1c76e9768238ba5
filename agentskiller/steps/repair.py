"""The quarantine reason of a unit whose LLM answer never passed its step's checks."""

from __future__ import annotations


def checks_failed(step: str, subject: str, rounds: list[dict], exc: Exception) -> str:
    """``"<step>: <subject> after N round(s): <the last round's first errors>"``.

    ``rounds`` is the step's record of its checking rounds (each with ``errors``); when the
    check never ran (the answer did not even parse), the LLM error itself is the reason.
    """
    last = rounds[-1]["errors"] if rounds else [str(exc)]
    return f"{step}: {subject} after {max(len(rounds), 1)} round(s): " + "; ".join(last[:5])
