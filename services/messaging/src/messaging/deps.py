from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from chat_core.http_auth import BearerCredentials, admit_bearer
from messaging.service import Messaging


async def get_messaging(connection: HTTPConnection) -> Messaging:
    # async although it awaits nothing: FastAPI runs a plain `def` dependency on its thread
    # pool, a thread hand-off per request (5-8 % of messaging's CPU per send in a profile).
    messaging: Messaging = connection.app.state.messaging
    return messaging


MessagingDep = Annotated[Messaging, Depends(get_messaging)]


async def current_user(messaging: MessagingDep, credentials: BearerCredentials) -> str:
    """The caller's user id: the same admission as the WebSocket edge, as 401/403."""
    return await admit_bearer(messaging.authenticator, messaging.runtime.db, credentials)


CurrentUser = Annotated[str, Depends(current_user)]
