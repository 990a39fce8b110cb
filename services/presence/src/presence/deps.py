from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from chat_core.http_auth import BearerCredentials, admit_bearer
from presence.service import PresenceService


async def get_service(connection: HTTPConnection) -> PresenceService:
    service: PresenceService = connection.app.state.presence
    return service


ServiceDep = Annotated[PresenceService, Depends(get_service)]


async def get_viewer(service: ServiceDep, credentials: BearerCredentials) -> str:
    return await admit_bearer(service.authenticator, service.runtime.db, credentials)


ViewerDep = Annotated[str, Depends(get_viewer)]
