"""Generated envs as RL environments: the episode core and the trainer adapters.

* :mod:`agentskiller.rlenv.episode`: :class:`EpisodeEnv` (``reset`` / ``call_tool`` /
  ``send_message_to_user`` / ``score``), dependency-light (the base install);
* :mod:`agentskiller.rlenv.trl`: a TRL ``GRPOTrainer(environment_factory=...)`` class
  (``pip install -e '.[trl]'``).
"""

from .episode import SEND_MESSAGE_TOOL, EpisodeEnv, EpisodeError, Observation, Score, load_env_rows, score_episodes

__all__ = [
    "EpisodeEnv",
    "EpisodeError",
    "Observation",
    "Score",
    "SEND_MESSAGE_TOOL",
    "load_env_rows",
    "score_episodes",
]
