"""What a run made, read back from its artifacts and logs: the funnel (topics to queries), the
status of every env, LLM usage per step and model, and the report's plots.

Everything here tolerates a run that is still going or was killed: a missing artifact means
the stage was not reached, an unreadable one is reported as such, never raised.
"""
