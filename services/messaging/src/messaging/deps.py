from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from chat_core.auth import Refusal, admit
from messaging.service import Messaging

_bearer = HTTPBearer(
    auto_error=False,
    description="Dev mode: the user's phone number (+84...). Firebase mode: an ID token.",
)


def get_messaging(connection: HTTPConnection) -> Messaging:
    messaging: Messaging = connection.app.state.messaging
    return messaging


MessagingDep = Annotated[Messaging, Depends(get_messaging)]


async def current_user(
    messaging: MessagingDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's user id: the same admission as the WebSocket edge, as 401/403."""
    token = credentials.credentials if credentials else None
    try:
        return await admit(messaging.authenticator, messaging.runtime.db, token)
    except Refusal as refusal:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.http_status == 401 else None
        raise HTTPException(refusal.http_status, refusal.reason, headers=headers) from None


CurrentUser = Annotated[str, Depends(current_user)]
