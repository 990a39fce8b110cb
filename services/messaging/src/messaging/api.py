"""The REST routes: thin adapters from HTTP to the domain functions."""

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Response, status
from fastapi.exceptions import HTTPException, RequestValidationError

from chat_core.clock import utcnow
from chat_core.store.sync import BadCursor, resolve, sync
from messaging.conversations import (
    InvalidParticipant,
    create_conversation,
    participants_of,
    user_id_check,
)
from messaging.deps import CurrentUser, MessagingDep
from messaging.errors import NotFound
from messaging.history import Page
from messaging.inbox import BadListCursor, inbox
from messaging.overload import Overloaded
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
    SyncOut,
    entry_out,
)
from messaging.sending import Draft, SendInProgress, content_problem, send_message

log = structlog.get_logger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
DEFAULT_SYNC_PAGE = 200

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
    if created:
        await messaging.welcome(conversation)
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
async def get_conversations(
    user_id: CurrentUser,
    messaging: MessagingDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="`nextCursor` of the previous page (opaque)."),
    ] = None,
) -> ConversationList:
    try:
        entries, next_cursor = await inbox(
            user_id,
            limit=limit,
            cursor=cursor,
            conversations=messaging.conversations,
            messages=messaging.messages,
            read_states=messaging.read_states,
            unwritten=messaging.store.write_behind,
        )
    except BadListCursor as error:
        raise _unprocessable(("query", "cursor"), str(error), cursor) from None
    return ConversationList(
        items=[ConversationSummary.of_entry(entry) for entry in entries], next_cursor=next_cursor
    )


@router.get(
    "/sync",
    tags=["sync"],
    responses={
        422: {"description": "`since` is neither a known messageId nor a nextSince cursor."}
    },
)
async def get_sync(
    user_id: CurrentUser,
    messaging: MessagingDep,
    since: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description="A messageId the client has seen, or `nextSince` of an earlier "
            "answer. Without it: the latest message of each conversation.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1)] = DEFAULT_SYNC_PAGE,
) -> SyncOut:
    started = utcnow()
    try:
        cursor = await resolve(since, messaging.messages)
    except BadCursor as error:
        raise _unprocessable(("query", "since"), str(error), since) from None
    page = await sync(
        user_id,
        cursor,
        conversations=messaging.conversations,
        messages=messaging.messages,
        limit=min(limit, messaging.settings.sync_max_limit),
        now=started,
    )
    return SyncOut.of(page)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
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
) -> Response:
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
        async with messaging.admission.slot():
            message, created = await send_message(
                draft,
                store=messaging.store,
                deliverer=messaging.runtime.broker,
                now=utcnow(),
                faults=messaging.faults,
                takeover_after=messaging.settings.send_takeover_seconds,
            )
    except Overloaded:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "too many sends in progress; retry (with the same clientMessageId)",
            headers={"Retry-After": "1"},
        ) from None
    except NotFound as error:
        raise _not_found(error) from None
    except SendInProgress:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "an earlier send of this message is still in progress; retry",
            headers={"Retry-After": "1"},
        ) from None
    if not created:
        log.info("repeated send answered with the first message", message_id=message.message_id)
    # Serialised here, once: the hot path skips FastAPI's response validation and encoding.
    return Response(
        MessageOut.of(message).model_dump_json(by_alias=True),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
    )


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
            description="Cursor: only messages older than this message id (newest first).",
        ),
    ] = None,
    after_seq: Annotated[
        int | None,
        Query(
            alias="afterSeq",
            ge=0,
            description="Only messages with a larger seq, oldest first (0: from the start). "
            "Not with `before`.",
        ),
    ] = None,
) -> MessagePage:
    if before is not None and after_seq is not None:
        raise _unprocessable(
            ("query", "afterSeq"), "afterSeq and before exclude each other", after_seq
        )
    reader = messaging.reader
    try:
        page: Page
        if after_seq is not None:
            page = await reader.after(user_id, conversation_id, after_seq=after_seq, limit=limit)
        else:
            page = await reader.before(user_id, conversation_id, before=before, limit=limit)
    except NotFound as error:
        raise _not_found(error) from None
    return MessagePage(items=[entry_out(e) for e in page.entries], has_more=page.has_more)


@router.get("/conversations/{conversation_id}/messages/{message_id}", responses=_NOT_FOUND)
async def get_message(
    conversation_id: ConversationId,
    message_id: MessageId,
    user_id: CurrentUser,
    messaging: MessagingDep,
) -> MessageDetail:
    try:
        message, readers = await messaging.reader.with_readers(user_id, conversation_id, message_id)
    except NotFound as error:
        raise _not_found(error) from None
    return MessageDetail.with_readers(message, readers)
