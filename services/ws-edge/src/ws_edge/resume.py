"""What a socket gets right after admission, before live events: a presence snapshot, and,
when it asked to resume (`?since=`), every message it may have missed, then `replay_done`.

Live deliveries that arrive meanwhile are held on the connection and sent afterwards, minus
the messages the replay already carried, so across the switch nothing is missed and nothing
is sent twice on this socket.
"""

import asyncio

import structlog

from chat_core.clock import utcnow
from chat_core.events import ErrorFrame, ReplayDone, UserStatusChange
from chat_core.store.messages import new_message_frame
from chat_core.store.sync import BadCursor, SyncCursor, resolve, sync
from ws_edge.edge import Edge
from ws_edge.registry import Connection

log = structlog.get_logger(__name__)

_REPLAY_PAGE = 200
# How long after a replay live repeats of its messages are still expected: the publish of a
# message the replay read can lag behind it by a slow request's tail.
REPLAY_REPEATS_SECONDS = 60.0


async def presence_snapshot(edge: Edge, connection: Connection) -> int:
    """One `user_status_change` per contact who is not offline (at most the configured cap):
    one lookup for the contacts, then theirs by `_id`, both shared with concurrent connects
    (ws_edge.lookups). Returns how many were sent."""
    contacts = sorted(await edge.contacts_of(connection.user_id))
    contacts = contacts[: edge.settings.snapshot_max_contacts]
    docs = await edge.presences.many(contacts)
    sent = 0
    for user_id in contacts:
        status = docs.get(user_id, {}).get("effective", "offline")
        if status != "offline":
            frame = UserStatusChange(user_id=user_id, status=status)
            await connection.send_paced(frame.to_text())
            sent += 1
    return sent


async def replay(edge: Edge, connection: Connection, since: str) -> dict[str, int]:
    """Send every message `/sync?since=` would return (up to the replay bound), then
    `replay_done`. Returns, per conversation, the highest seq sent: every message up to it
    has now reached the socket (replayed, or seen before the cursor)."""
    messages = edge.messages
    conversations = edge.conversations
    sent: set[str] = set()
    upto: dict[str, int] = {}
    started = utcnow()
    try:
        cursor: SyncCursor | None = await resolve(since, messages)
    except BadCursor as error:
        await connection.send_paced(ErrorFrame(message=f"since: {error}").to_text())
        await connection.send_paced(ReplayDone(truncated=True, next_since=since).to_text())
        return upto
    bound = edge.settings.replay_max_messages
    truncated = False
    while True:
        page = await sync(
            connection.user_id,
            cursor,
            conversations=conversations,
            messages=messages,
            limit=min(_REPLAY_PAGE, bound - len(sent)),
            now=started,
        )
        for message in page.messages:
            # Awaiting each write is the back-pressure: a slow socket slows its own replay.
            await connection.send_paced(new_message_frame(message).to_text())
            sent.add(message.message_id)
            upto[message.conversation_id] = max(upto.get(message.conversation_id, 0), message.seq)
        cursor = page.next
        if not page.has_more:
            break
        if len(sent) >= bound:
            truncated = True
            break
    await connection.send_paced(
        ReplayDone(truncated=truncated, next_since=cursor.encode()).to_text()
    )
    log.info("replayed", user_id=connection.user_id, messages=len(sent), truncated=truncated)
    return upto


async def release_held(connection: Connection, replayed: dict[str, int]) -> None:
    """Send what arrived during the snapshot and replay, then go live; for a while after,
    live repeats of replayed messages are still dropped (delivery.py)."""
    if replayed:
        connection.replayed = replayed
        asyncio.get_running_loop().call_later(REPLAY_REPEATS_SECONDS, _forget_replay, connection)
    held = connection.held
    while held:
        payload, conversation_id, seq = held.pop(0)
        if connection.repeats_replay(conversation_id, seq):
            continue
        await connection.send_paced(payload)
    # No await since the last check: nothing can slip in between.
    connection.held = None


def _forget_replay(connection: Connection) -> None:
    connection.replayed = None
