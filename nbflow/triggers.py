"""Triggers by function: ``@task(trigger=nbflow.triggers.any_failed)``."""

from nbflow.core.triggers import (
    TRIGGERS,
    Trigger,
    all_failed,
    all_finished,
    all_successful,
    any_failed,
    any_successful,
    manual_only,
)

__all__ = [
    "TRIGGERS",
    "Trigger",
    "all_failed",
    "all_finished",
    "all_successful",
    "any_failed",
    "any_successful",
    "manual_only",
]
