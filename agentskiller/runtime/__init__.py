"""Runtime for generated environments (DESIGN.md §6): state, tool context, tool loading,
sandbox, fast-path worker and MCP server.

Generated tool code imports only :mod:`agentskiller.runtime.api`. Steps use:

* :func:`load_environment` / :class:`Environment` / :class:`Session` (environment.py)
* :class:`State` (state.py)
* :func:`tool_spec`, :func:`compare_tool_lists`, :class:`ToolSet` (loader.py)
* :func:`run_sandboxed`, :class:`SandboxSettings` (sandbox.py)
* :func:`execute_episodes` (worker.py)
* ``build_server`` from :mod:`agentskiller.runtime.mcp_server` (imports the MCP SDK, so it
  is not re-exported here).
"""

from .api import GENERATED_ID_RE, Context, Table, ToolError, is_tool, tool
from .environment import CallRecord, Environment, EnvironmentManifest, Session, load_environment
from .loader import ToolSet, compare_tool_lists, tool_spec, tool_specs_from_file
from .sandbox import SandboxResult, SandboxSettings, run_sandboxed
from .state import State, StateError

_LAZY = {"EpisodeResult", "WorkerError", "execute_episodes", "execute_episodes_inprocess"}


def __getattr__(name: str):
    # worker.py is also run as ``python -m agentskiller.runtime.worker``; importing it here
    # eagerly would make runpy warn that the module is already in sys.modules.
    if name in _LAZY:
        from . import worker

        return getattr(worker, name)
    raise AttributeError(name)


__all__ = [
    "GENERATED_ID_RE",
    "Context",
    "Table",
    "ToolError",
    "is_tool",
    "tool",
    "CallRecord",
    "Environment",
    "EnvironmentManifest",
    "Session",
    "load_environment",
    "ToolSet",
    "compare_tool_lists",
    "tool_spec",
    "tool_specs_from_file",
    "SandboxResult",
    "SandboxSettings",
    "run_sandboxed",
    "State",
    "StateError",
    "EpisodeResult",
    "WorkerError",
    "execute_episodes",
    "execute_episodes_inprocess",
]
