"""s16 grounding map: where an agent gets every argument of every golden call.

Sources, tried in this order:

* ``user``: the user states the value (a slot the instance's ``states`` lists, their own ID);
* ``call:i.path``: the executed result of an earlier call holds it (``call:1.0.appointment_id``:
  field ``appointment_id`` of the first record call 1 returned); an argument a ``resolve``
  rule fills is ``call:i.field``;
* ``schema``: the tool's declaration allows it as a literal (an enum value, a boolean);
* ``now``: the simulation clock (a date that is today).

An argument with no source makes the task invalid (``ungrounded_argument``): an agent
could not find the value. ``dataset/train.jsonl`` carries the map; the dataset test
re-derives it from the row alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentskiller.models.tasks import GoldenCall


def scalars(obj: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    """``(path, value)`` of every scalar in a JSON-like value (``0.appointment_id``)."""
    if isinstance(obj, dict):
        for k in sorted(obj):
            yield from scalars(obj[k], f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from scalars(v, f"{path}.{i}" if path else str(i))
    else:
        yield path, obj


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (str(a) == str(b) and not isinstance(a, bool) and not isinstance(b, bool))


def source(value: Any, said: list[Any], earlier: list[Any], enum: list | None, typ: str | None, now: str) -> str | None:
    if any(_same(value, v) for v in said):
        return "user"
    for j, result in enumerate(earlier):
        for path, v in scalars(result):
            if not isinstance(v, bool) and v is not None and _same(value, v):
                return f"call:{j}.{path}"
    if (enum and value in enum) or (isinstance(value, bool) and typ == "boolean"):
        return "schema"
    if now and isinstance(value, str) and value[:10] == now[:10]:
        return "now"
    return None


def grounding(
    calls: list[GoldenCall],
    arguments: list[dict],
    results: list[Any],
    said: list[Any],
    params: dict[str, dict[str, tuple[list | None, str | None]]],
    now: str,
) -> list[dict[str, str | None]]:
    """Per call, argument -> source (None: ungrounded). ``arguments``: the executed
    arguments (resolve rules applied); ``params``: tool -> parameter -> (enum, type)."""
    out = []
    for i, (call, args) in enumerate(zip(calls, arguments)):
        got: dict[str, str | None] = {}
        for name, value in sorted(args.items()):
            rule = call.resolve.get(name)
            if rule is not None:
                got[name] = f"call:{rule.call}.{rule.field}"
                continue
            enum, typ = params.get(call.name, {}).get(name, (None, None))
            got[name] = source(value, said, results[:i], enum, typ, now)
        out.append(got)
    return out
