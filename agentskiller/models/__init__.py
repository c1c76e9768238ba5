"""Pydantic models at the boundaries between steps (catalogue, blueprints, tasks)."""
