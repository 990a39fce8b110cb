"""A terminal chat with one peer, on the chat_client library.

    uv run --no-sync python libs/chat-client/examples/chat.py +84912345678 +84987654321

Every line typed is sent to the one-to-one conversation with the peer; every event received is
printed. Defaults point at `make run` (ws-edge :8000, messaging :8001); in firebase mode pass
`--token <Firebase ID token>`.
"""

import argparse
import asyncio
import sys

from chat_client import ChatClient, RestClient
from chat_core.events import MessageReadReceipt, NewMessage, TypingIndicator, UserStatusChange


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("user_id")
    parser.add_argument("peer_id")
    parser.add_argument("--token", default=None, help="default: the user id (dev auth mode)")
    parser.add_argument("--edge", default="ws://127.0.0.1:8000")
    parser.add_argument("--api", default="http://127.0.0.1:8001")
    return parser.parse_args()


async def print_events(client: ChatClient, conversation_id: str) -> None:
    async for event in client.events():
        if isinstance(event, NewMessage):
            print(f"[{event.timestamp}] {event.sender_id}: {event.content}")
            if event.sender_id != client.user_id:
                await client.mark_read(conversation_id, event.message_id)
        elif isinstance(event, TypingIndicator):
            print(f"  ({event.user_id} is typing)")
        elif isinstance(event, MessageReadReceipt):
            print(f"  ({event.user_id} read {event.message_id})")
        elif isinstance(event, UserStatusChange):
            print(f"  ({event.user_id} is {event.status})")
        elif event.event in ("connected", "disconnected", "caught_up"):
            print(f"  -- {event}")


async def main() -> None:
    args = parse_args()
    token = args.token or args.user_id
    async with (
        RestClient(args.api, token) as rest,
        ChatClient(args.edge, args.user_id, token, rest=rest) as client,
    ):
        conversation = await rest.create_conversation([args.peer_id])
        conversation_id = str(conversation["id"])
        print(f"conversation {conversation_id}; type a line and press Enter (Ctrl-D quits)")
        printer = asyncio.create_task(print_events(client, conversation_id))
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip():
                await client.typing(conversation_id)
                await rest.send_message(conversation_id, line.strip())
        printer.cancel()


if __name__ == "__main__":
    asyncio.run(main())
