"""Presence over HTTP: one user, or a batch for a contact list; only self and contacts."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from chat_core.http_errors import NOT_FOUND
from chat_core.ids import normalize_user_id
from presence.deps import ServiceDep, ViewerDep
from presence.views import PresenceList, PresenceView, visible_presence

router = APIRouter(prefix="/presence", tags=["presence"])

# Not a contact and never seen look the same: nothing about a stranger leaks.
_NOT_FOUND = "no presence for this user"


@router.get("", response_model=PresenceList)
async def presence_batch(
    viewer: ViewerDep,
    service: ServiceDep,
    user_ids: Annotated[
        str, Query(alias="userIds", description="comma-separated user ids", max_length=20_000)
    ],
) -> PresenceList:
    # A raw `+` arrives as a space: normalise before stripping whitespace.
    wanted = [normalize_user_id(part).strip() for part in user_ids.split(",")]
    wanted = [user_id for user_id in wanted if user_id]
    if len(wanted) > service.settings.batch_limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"at most {service.settings.batch_limit} user ids per request",
        )
    items = await visible_presence(viewer, wanted, service.contacts, service.tracker.store)
    return PresenceList(items=items)


@router.get("/{user_id}", response_model=PresenceView, responses=NOT_FOUND)
async def presence_of(user_id: str, viewer: ViewerDep, service: ServiceDep) -> PresenceView:
    found = await visible_presence(
        viewer, [normalize_user_id(user_id)], service.contacts, service.tracker.store
    )
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _NOT_FOUND)
    return found[0]
