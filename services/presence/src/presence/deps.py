from typing import Annotated

from fastapi import Depends

from chat_core.http_auth import bearer_user, from_app_state
from presence.service import PresenceService

get_service = from_app_state("presence")
ServiceDep = Annotated[PresenceService, Depends(get_service)]
ViewerDep = Annotated[str, Depends(bearer_user(get_service))]
