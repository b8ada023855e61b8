"""Running flows as a team: the secrets, hooks and concurrency-limit parts of the schema,
merged into ``Query`` and ``Mutation`` (each part lives in its own module)."""

from __future__ import annotations

import strawberry

from nbflow.server.schema.concurrency import ConcurrencyMutation, ConcurrencyQuery
from nbflow.server.schema.hooks import HooksMutation, HooksQuery
from nbflow.server.schema.secrets import SecretsMutation, SecretsQuery


@strawberry.type
class TeamQuery(SecretsQuery, HooksQuery, ConcurrencyQuery):
    """Secrets (names), hooks and their deliveries, concurrency limits."""


@strawberry.type
class TeamMutation(SecretsMutation, HooksMutation, ConcurrencyMutation):
    """Secrets, hooks and concurrency limits and slots."""
