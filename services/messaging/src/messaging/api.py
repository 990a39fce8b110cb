"""The REST routes: thin adapters from HTTP to the domain functions."""

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Response, status
from fastapi.exceptions import HTTPException, RequestValidationError

from chat_core.events import utcnow
from messaging.conversations import (
    InvalidParticipant,
    create_conversation,
    participants_of,
    user_id_check,
)
from messaging.deps import CurrentUser, MessagingDep
from messaging.errors import NotFound
from messaging.history import history_page, message_with_readers
from messaging.inbox import inbox
from messaging.schemas import (
    DOCUMENT_ID_PATTERN,
    ConversationList,
    ConversationOut,
    ConversationSummary,
    CreateConversation,
    ErrorOut,
    MessageDetail,
    MessageOut,
    MessagePage,
    SendMessage,
)
from messaging.sending import Draft, content_problem, send_message

log = structlog.get_logger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid token."},
    403: {"model": ErrorOut, "description": "The account is disabled."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorOut,
        "description": "Unknown conversation or message, or one the caller is not a member "
        "of (the two are indistinguishable).",
    },
}

router = APIRouter(tags=["conversations"], responses=_AUTH_ERRORS)

ConversationId = Annotated[
    str, Path(pattern=DOCUMENT_ID_PATTERN, description="24 hex digits; anything else is 422.")
]
MessageId = Annotated[
    str, Path(pattern=DOCUMENT_ID_PATTERN, description="24 hex digits; anything else is 422.")
]


def _unprocessable(location: tuple[str | int, ...], reason: str, value: object) -> Exception:
    """A 422 in FastAPI's own shape, for rules that depend on settings."""
    return RequestValidationError(
        [{"type": "value_error", "loc": location, "msg": reason, "input": value}]
    )


def _not_found(error: NotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, error.reason)


@router.post(
    "/conversations",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": ConversationOut,
            "description": "The pair's existing one-to-one conversation (two participants, "
            "no name), returned instead of a duplicate.",
        },
        201: {"description": "A new conversation."},
    },
)
async def post_conversation(
    body: CreateConversation, user_id: CurrentUser, messaging: MessagingDep, response: Response
) -> ConversationOut:
    settings = messaging.settings
    try:
        participants = participants_of(
            user_id,
            body.participant_ids,
            is_valid=user_id_check(settings.auth_mode),
            max_participants=settings.max_participants,
        )
    except InvalidParticipant as error:
        location: tuple[str | int, ...] = ("body", "participantIds")
        if error.index is not None:
            location = (*location, error.index)
        raise _unprocessable(location, error.reason, body.participant_ids) from None
    conversation, created = await create_conversation(
        messaging.conversations, user_id, participants, body.name, utcnow()
    )
    messaging.members.remember(conversation)
    await messaging.announce_conversation(conversation)
    if not created:
        response.status_code = status.HTTP_200_OK
    log.info(
        "conversation created" if created else "one-to-one conversation returned",
        user_id=user_id,
        conversation_id=conversation.conversation_id,
        participants=len(participants),
    )
    return ConversationOut.of(conversation)


@router.get("/conversations")
async def get_conversations(user_id: CurrentUser, messaging: MessagingDep) -> ConversationList:
    entries = await inbox(
        user_id, messaging.conversations, messaging.messages, messaging.read_states
    )
    return ConversationList(items=[ConversationSummary.of_entry(entry) for entry in entries])


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    responses={
        **_NOT_FOUND,
        201: {
            "description": "The message; a repeated clientMessageId returns the first "
            "message again (same messageId) and delivers nothing."
        },
    },
)
async def post_message(
    conversation_id: ConversationId,
    body: SendMessage,
    user_id: CurrentUser,
    messaging: MessagingDep,
) -> MessageOut:
    problem = content_problem(body.content, messaging.settings.max_content_chars)
    if problem:
        raise _unprocessable(("body", "content"), problem, body.content[:64])
    draft = Draft(
        conversation_id=conversation_id,
        sender_id=user_id,
        content=body.content,
        message_type=body.message_type,
        client_message_id=body.client_message_id,
    )
    try:
        message, created = await send_message(
            draft,
            members=messaging.members,
            messages=messaging.messages,
            outbox=messaging.outbox,
            deliverer=messaging.runtime.broker,
            now=utcnow(),
            after_write=messaging.after_write,
        )
    except NotFound as error:
        raise _not_found(error) from None
    log.info(
        "message sent" if created else "repeated send answered with the first message",
        user_id=user_id,
        conversation_id=conversation_id,
        message_id=message.message_id,
    )
    return MessageOut.of(message)


@router.get("/conversations/{conversation_id}/messages", responses=_NOT_FOUND)
async def get_messages(
    conversation_id: ConversationId,
    user_id: CurrentUser,
    messaging: MessagingDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    before: Annotated[
        str | None,
        Query(
            pattern=DOCUMENT_ID_PATTERN,
            description="Cursor: only messages older than this message id.",
        ),
    ] = None,
) -> MessagePage:
    try:
        found, more = await history_page(
            user_id,
            conversation_id,
            before=before,
            limit=limit,
            members=messaging.members,
            messages=messaging.messages,
        )
    except NotFound as error:
        raise _not_found(error) from None
    return MessagePage(items=[MessageOut.of(message) for message in found], has_more=more)


@router.get("/conversations/{conversation_id}/messages/{message_id}", responses=_NOT_FOUND)
async def get_message(
    conversation_id: ConversationId,
    message_id: MessageId,
    user_id: CurrentUser,
    messaging: MessagingDep,
) -> MessageDetail:
    try:
        message, readers = await message_with_readers(
            user_id,
            conversation_id,
            message_id,
            members=messaging.members,
            messages=messaging.messages,
            read_states=messaging.read_states,
        )
    except NotFound as error:
        raise _not_found(error) from None
    return MessageDetail.with_readers(message, readers)
