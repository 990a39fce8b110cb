from typing import Annotated

from fastapi import Depends

from chat_core.http_auth import bearer_user, from_app_state
from messaging.service import Messaging

get_messaging = from_app_state("messaging")
MessagingDep = Annotated[Messaging, Depends(get_messaging)]
CurrentUser = Annotated[str, Depends(bearer_user(get_messaging))]
