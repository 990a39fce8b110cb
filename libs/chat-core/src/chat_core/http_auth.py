"""REST admission: the WebSocket edge's checks, answered as 401 or 403."""

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chat_core.auth import Authenticator, Refusal, admit
from chat_core.db import Database

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="Dev mode: the user's phone number (+84...). Firebase mode: an ID token.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def admit_bearer(
    authenticator: Authenticator, db: Database, credentials: HTTPAuthorizationCredentials | None
) -> str:
    """The caller's user id, or the HTTPException that refuses them."""
    token = credentials.credentials if credentials else None
    try:
        return await admit(authenticator, db, token)
    except Refusal as refusal:
        unauthorized = refusal.http_status == status.HTTP_401_UNAUTHORIZED
        headers = {"WWW-Authenticate": "Bearer"} if unauthorized else None
        raise HTTPException(refusal.http_status, refusal.reason, headers=headers) from None
