"""Offline handlers, one module per step (``sNN_*.py``).

``@handler(task)`` in a step's module registers that step's tasks (``s07_policy.py``:
``s07.policy``). The provider imports a step's module the first time one of its tasks is
asked for, and every module only when it needs them all (:func:`load`), so a job pays for the
handlers of its own step; adding a handler is adding a module, with no list to keep in sync.
"""

import importlib
import pkgutil


def module_names(step: str | None = None) -> list[str]:
    """The handler modules (of ``step``, e.g. ``"s07"``, when given), sorted."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [n for n in names if step is None or n.split("_", 1)[0] == step]


def load(step: str | None = None) -> None:
    """Import the handler modules of ``step`` (every one when ``None``)."""
    for name in module_names(step):
        importlib.import_module(f"{__name__}.{name}")
