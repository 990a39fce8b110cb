"""The error answers every REST route can give, declared once for the OpenAPI documents.

Services pass these dicts to `include_router(..., responses=...)`, so a route lists them
without each handler repeating them; a route's own entry for a code wins.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, for a person.")


class ValidationIssue(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationIssue] | str = Field(
        description="FastAPI's list of issues, or one sentence for a rule that spans fields."
    )


Responses = dict[int | str, dict[str, Any]]

RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

AUTH: Responses = {
    401: {"model": ErrorBody, "description": "Missing, malformed, invalid or expired token."},
    403: {"model": ErrorBody, "description": "The account is disabled."},
}
NOT_FOUND: Responses = {
    404: {"model": ErrorBody, "description": "Not found, or not visible to the caller."},
}
LIMITS: Responses = {
    413: {"model": ErrorBody, "description": "The request body is over the size limit."},
    422: {"model": ValidationErrorBody, "description": "The request is not valid."},
    429: {
        "model": ErrorBody,
        "description": "Over a rate limit; retry after `Retry-After` seconds.",
        "headers": RETRY_AFTER,
    },
    503: {
        "model": ErrorBody,
        "description": "A dependency (database or broker) is briefly unavailable; retry after "
        "`Retry-After` seconds (sending again with the same clientMessageId is safe).",
        "headers": RETRY_AFTER,
    },
}
# What every authenticated REST route declares.
REST_ERRORS: Responses = {**AUTH, **LIMITS}
