"""Offline handlers, one module per step (``sNN_*.py``).

Importing this package imports every module in it, which registers their handlers via
``@handler(task)``; adding a handler is adding a module, with no list to keep in sync.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
