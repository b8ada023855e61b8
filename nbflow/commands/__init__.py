"""Subcommands of the ``nbflow`` CLI, one module per area."""
