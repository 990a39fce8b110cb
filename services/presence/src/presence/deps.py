from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from chat_core.auth import Refusal, admit
from presence.service import PresenceService

_bearer = HTTPBearer(auto_error=False)


def get_service(connection: HTTPConnection) -> PresenceService:
    service: PresenceService = connection.app.state.presence
    return service


ServiceDep = Annotated[PresenceService, Depends(get_service)]


async def get_viewer(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    token = credentials.credentials if credentials else None
    try:
        return await admit(service.authenticator, service.runtime.db, token)
    except Refusal as refusal:
        headers = (
            {"WWW-Authenticate": "Bearer"}
            if refusal.http_status == status.HTTP_401_UNAUTHORIZED
            else None
        )
        raise HTTPException(refusal.http_status, refusal.reason, headers=headers) from None


ViewerDep = Annotated[str, Depends(get_viewer)]
