"""``safe_load`` with libyaml's C parser where PyYAML has it (``yaml.CSafeLoader``).

The same constructor and resolver as ``yaml.safe_load``, so the same data; parsing is about
ten times faster, which matters in a job's start-up: the offline catalogue (two files of
~70 kB) took 1.6 s per job with the pure-Python parser, 0.2 s with this one.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str | bytes) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader (C or Python)
