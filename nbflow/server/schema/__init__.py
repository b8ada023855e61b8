"""The GraphQL schema: queries, mutations, bounded depth, masked internal errors."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from nbflow.core.errors import NbflowError
from nbflow.server import db
from nbflow.server.errors import RequestError, Unavailable
from nbflow.server.gate import may_hold_nul
from nbflow.server.schema.inputs import RECORD_SCALARS
from nbflow.server.schema.mutations import Mutation
from nbflow.server.schema.queries import Query

if TYPE_CHECKING:
    from collections.abc import Iterator

logger = logging.getLogger("nbflow.server")

MAX_DEPTH = 8
MAX_ALIASES = 30
MAX_TOKENS = 20_000

# The limits' validation rules, made once. The validation cache is keyed by the rule
# classes, and the limiters make a new class per instance: built per request, they made
# every request miss the cache and validate its document again (most of a write's cost).
_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


def _mask(error: GraphQLError) -> bool:
    """Show our own errors, GraphQL validation and permission errors; hide the rest."""
    original = error.original_error
    if original is None:
        return False
    # GraphQL's own errors (a variable of the wrong type, a missing field) are the caller's mistake.
    if isinstance(original, NbflowError | PermissionError | GraphQLError):
        return False
    if db.is_unavailable(original):  # said as UNAVAILABLE (RequestRules), in one line of the log
        return False
    return type(original).__name__ not in {"PermissionError", "StrawberryGraphQLError"}


class RequestRules(MaskErrors):
    """Each request's limits and error handling, as one extension: the depth and alias rules
    (the same rule classes every time), the token limit, then ``extensions.code``
    (NOT_FOUND, CONFLICT, BAD_REQUEST, ...) on our errors and the masking of the others.

    One extension rather than four: strawberry wraps every hook of every extension in a new
    context manager on each request, which cost more than the hooks do."""

    def __init__(self) -> None:
        super().__init__(
            should_mask_error=_mask, error_message="internal error: the server logged the details"
        )

    def on_operation(self) -> Iterator[None]:
        """Set the limits; after the operation, tag our errors with their code, then mask."""
        context = self.execution_context
        context.validation_rules = (*context.validation_rules, *_LIMIT_RULES)
        context.parse_options["max_tokens"] = MAX_TOKENS
        masking = super().on_operation()
        next(masking)  # MaskErrors' own part before the operation
        yield
        errors = getattr(context.result, "errors", None)
        for index, error in enumerate(errors or []):
            original = error.original_error
            if original is not None and not isinstance(original, NbflowError) and db.is_unavailable(original):
                # Said as what it is, not masked as an internal error: the caller may send it again.
                logger.warning("a request found the database unavailable: %s", db.first_line(original))
                original = Unavailable()
                error = errors[index] = GraphQLError(
                    original.MESSAGE, nodes=error.nodes, path=error.path, original_error=original
                )
            code = original.code if isinstance(original, RequestError) else None
            if code is None and isinstance(original, NbflowError):
                code = "BAD_REQUEST"
            if code is not None:
                error.extensions = {**(error.extensions or {}), "code": code}
        # MaskErrors' part after the operation only where there may be something to mask: its
        # isinstance against a runtime-checkable Protocol walks the Protocol's members each
        # time (a tenth of the smallest request's instructions).
        if errors or not hasattr(context.result, "errors"):
            next(masking, None)


class NoNul(SchemaExtension):
    """Arguments reach resolvers without NUL characters (PostgreSQL stores no NUL in text, and
    cannot even compare with one): each becomes the visible text ``\\x00``, at the one door.
    The schema runs it only for a request that may hold one (``NbflowSchema.get_extensions``)."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        """Clean the field's arguments, then resolve it."""
        if kwargs:
            kwargs = {k: _without_nul(v) for k, v in kwargs.items()}
        return _next(root, info, *args, **kwargs)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00") if "\x00" in value else value
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name, item in vars(value).items():
            cleaned = _without_nul(item)
            if cleaned is not item:
                setattr(value, name, cleaned)
    return value


class NbflowSchema(strawberry.Schema):
    """The schema, logging only unexpected errors (a bad request is the caller's business)."""

    def get_extensions(self, sync: bool = False) -> list[SchemaExtension]:
        """The request's extensions: ``NoNul`` only when the request may hold a NUL."""
        # An extension that resolves is middleware around every field of the answer, the
        # results of a batch included: a quarter of a 500-state batch's time, for nothing.
        extensions = super().get_extensions(sync)
        if may_hold_nul.get():
            return extensions
        return [e for e in extensions if not isinstance(e, NoNul)]

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # A bad request is the caller's business; only unexpected failures go to the log.
        """Log what was not the caller's mistake."""
        unexpected = [e for e in errors if _mask(e)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    """The GraphQL schema with its limits, caches and error masking."""
    return NbflowSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=RECORD_SCALARS),
        # Factories: a fresh extension per request (the parse and validation caches are
        # module-level in strawberry, so clients' repeated documents are still parsed once).
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            RequestRules,
            NoNul,
        ],
    )
