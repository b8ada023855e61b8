"""The GraphQL schema: queries, mutations, bounded depth, masked internal errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from nbflow.core.errors import NbflowError
from nbflow.server.errors import RequestError
from nbflow.server.schema.mutations import Mutation
from nbflow.server.schema.queries import Query

if TYPE_CHECKING:
    from graphql import GraphQLError

MAX_DEPTH = 8


def _mask(error: GraphQLError) -> bool:
    """Show our own errors, GraphQL validation and permission errors; hide the rest."""
    original = error.original_error
    if original is None:
        return False
    if isinstance(original, NbflowError | PermissionError):
        return False
    return type(original).__name__ not in {"PermissionError", "StrawberryGraphQLError"}


class ErrorCodes(SchemaExtension):
    """Adds ``extensions.code`` (NOT_FOUND, CONFLICT, BAD_REQUEST, ...) to our errors."""

    def on_operation(self) -> Any:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            original = error.original_error
            code = original.code if isinstance(original, RequestError) else None
            if code is None and isinstance(original, NbflowError):
                code = "BAD_REQUEST"
            if code is not None:
                error.extensions = {**(error.extensions or {}), "code": code}


class NbflowSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # A bad request is the caller's business; only unexpected failures go to the log.
        unexpected = [e for e in errors if _mask(e)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    return NbflowSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            # Clients send the same few documents again and again: parse and validate each once.
            ParserCache(maxsize=512),
            ValidationCache(maxsize=512),
            QueryDepthLimiter(max_depth=MAX_DEPTH),
            MaxTokensLimiter(max_token_count=20_000),
            MaxAliasesLimiter(max_alias_count=30),
            MaskErrors(
                should_mask_error=_mask, error_message="internal error: the server logged the details"
            ),
        ],
    )
