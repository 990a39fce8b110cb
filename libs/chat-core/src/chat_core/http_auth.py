"""REST admission (the WebSocket edge's checks, answered as 401 or 403) and the route
dependencies every service builds from it."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from chat_core.accounts import Accounts
from chat_core.auth import Authenticator, Refusal, admit
from chat_core.runtime import Runtime

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="Dev mode: the user's phone number (+84...). Firebase mode: an ID token.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def admit_bearer(
    authenticator: Authenticator,
    accounts: Accounts,
    credentials: HTTPAuthorizationCredentials | None,
) -> str:
    """The caller's user id, or the HTTPException that refuses them."""
    token = credentials.credentials if credentials else None
    try:
        return await admit(authenticator, accounts, token)
    except Refusal as refusal:
        unauthorized = refusal.http_status == status.HTTP_401_UNAUTHORIZED
        headers = {"WWW-Authenticate": "Bearer"} if unauthorized else None
        raise HTTPException(refusal.http_status, refusal.reason, headers=headers) from None


class AdmittingService(Protocol):
    """What a service object offers for REST admission."""

    @property
    def authenticator(self) -> Authenticator: ...

    @property
    def runtime(self) -> Runtime: ...


def from_app_state(attribute: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """A route dependency: the object the lifespan stored as `app.state.<attribute>`."""

    # async although it awaits nothing: FastAPI runs a plain `def` dependency on its thread
    # pool, a thread hand-off per request (5-8 % of messaging's CPU per send in a profile).
    async def get(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state, attribute)

    get.__name__ = f"get_{attribute}"
    return get


def bearer_user(
    get_service: Callable[[HTTPConnection], Awaitable[AdmittingService]],
) -> Callable[..., Awaitable[str]]:
    """A route dependency: the caller's user id, admitted as the WebSocket edge admits
    (401 or 403 otherwise). Build it once per service: FastAPI caches a dependency per
    request by identity, so every route and router dependency then admits only once."""

    async def current_user(
        service: Annotated[AdmittingService, Depends(get_service)],
        credentials: BearerCredentials,
    ) -> str:
        return await admit_bearer(service.authenticator, service.runtime.accounts, credentials)

    return current_user
