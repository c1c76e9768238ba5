"""Robust extraction of JSON and code from model answers.

Real models wrap JSON in fenced blocks, add prose before and after, or emit a reasoning
block first: ``<think>...</think>``, or (DeepSeek-R1, QwQ, whose chat template already opened
the tag) only the closing ``</think>``. The answer is what follows the last ``</think>``;
the reasoning before it often holds draft JSON and must never be parsed. These helpers find
the payload without guessing too much: they only ever return something that parses.
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK_CLOSE_RE = re.compile(r"</think\s*>", re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"^\s*<think\s*>", re.IGNORECASE)
# ```lang\n ... ``` ; the closing fence may be missing when the answer was cut off.
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


class ExtractionError(ValueError):
    """No JSON value could be found in the answer."""


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a model's text.

    After the last ``</think>`` is the answer, everything before it reasoning (also with no
    opening tag). A ``<think>`` that opens the text and is never closed is reasoning cut off
    before any answer: the answer is empty.
    """
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        last = closes[-1]
        reasoning = _THINK_OPEN_RE.sub("", text[: last.start()], count=1)
        return reasoning.strip(), text[last.end() :].strip()
    if _THINK_OPEN_RE.match(text):
        return _THINK_OPEN_RE.sub("", text, count=1).strip(), ""
    return "", text.strip()


def strip_reasoning(text: str) -> str:
    """The answer part of ``text`` (see :func:`split_reasoning`)."""
    return split_reasoning(text)[1]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced blocks as ``(language, body)`` in order of appearance."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(text)]


def extract_json(text: str) -> Any:
    """Return the JSON value in ``text``.

    Order: the whole text; fenced blocks (``json`` first, then any); then the first
    position where a ``{`` or ``[`` starts a complete JSON value (objects preferred).
    """
    if not isinstance(text, str):
        raise ExtractionError(f"answer is not text but {type(text).__name__}")
    reasoning, text = split_reasoning(text)
    if not text:
        if reasoning:
            raise ExtractionError("the answer has reasoning but no answer after it; expected a JSON object")
        raise ExtractionError("the answer is empty; expected a JSON object")
    try:
        return json.loads(text)
    except ValueError:
        pass
    blocks = fenced_blocks(text)
    for _lang, body in sorted(blocks, key=lambda b: b[0] not in ("json", "json5", "jsonc")):
        try:
            return json.loads(body)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for opener in ("{", "["):
        start = text.find(opener)
        while start >= 0:
            try:
                value, _ = decoder.raw_decode(text, start)
                return value
            except ValueError:
                start = text.find(opener, start + 1)
    # Say why in terms a model can act on.
    try:
        json.loads(blocks[0][1] if blocks else text)
    except ValueError as exc:
        raise ExtractionError(f"the answer is not valid JSON: {exc}") from None
    raise ExtractionError("no JSON value found in the answer")  # pragma: no cover


def extract_code(text: str, prefer: str = "python") -> str:
    """First fenced block tagged ``prefer`` (e.g. python/py), else the first fenced block,
    else the whole text (stripped of reasoning)."""
    text = strip_reasoning(text)
    blocks = fenced_blocks(text)
    aliases = {"python": ("python", "py", "python3")}.get(prefer, (prefer,))
    for lang, body in blocks:
        if lang in aliases:
            return body.strip("\n") + "\n"
    if blocks:
        return blocks[0][1].strip("\n") + "\n"
    return text.strip("\n") + "\n" if text else ""
