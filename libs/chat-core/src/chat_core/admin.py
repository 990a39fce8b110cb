"""`chat-admin`: operator commands. `users disable` also closes the user's open sockets."""

import argparse
import asyncio
import json
import sys

from chat_core import cli, users
from chat_core.accounts import announce_change
from chat_core.auth import account_disabled
from chat_core.db import connect
from chat_core.events import Disconnect
from chat_core.ids import is_vn_mobile, normalize_user_id
from chat_core.runtime import Runtime
from chat_core.settings import AuthMode, ServiceSettings
from chat_core.store.migrate import migrate

EXAMPLES = """examples:
  chat-admin users show +84912345678      account flags and presence, as JSON
  chat-admin users disable +84912345678   refuse the user everywhere; open sockets get 4003
  chat-admin users enable +84912345678    allow the user again
  AUTH_MODE=firebase chat-admin users disable <firebase uid>
  docker compose run --rm messaging chat-admin users show +84912345678"""


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "chat-admin", __doc__, ServiceSettings, distribution="chat-core", examples=EXAMPLES
    )
    topics = parser.add_subparsers(dest="topic", required=True)
    user_commands = topics.add_parser("users", help="manage user accounts").add_subparsers(
        dest="command", required=True
    )
    for command, help_text in (
        ("disable", "refuse the user everywhere and close their connections (4003)"),
        ("enable", "allow the user again"),
        ("show", "print the user's account flags and presence"),
    ):
        user_commands.add_parser(command, help=help_text).add_argument("user_id")
    topics.add_parser(
        "migrate",
        help="bring the database to this release's store version (idempotent, resumable)",
    )
    return parser


async def _migrate(settings: ServiceSettings) -> dict[str, int]:
    mongo = connect(settings.mongo_url.get_secret_value())
    try:
        return await migrate(
            mongo[settings.mongo_db], lambda line: print(f"migrate: {line}", file=sys.stderr)
        )
    finally:
        await mongo.close()


async def _run(args: argparse.Namespace, settings: ServiceSettings) -> dict[str, object]:
    # Account flags and disconnects work on any store version, migrated or not.
    runtime = await Runtime.start(settings, "chat-admin", check_schema=False, watch_accounts=False)
    try:
        if args.command == "disable":
            await users.set_disabled(runtime.db, args.user_id, True)
            await announce_change(runtime.broker, args.user_id, disabled=True)
            refusal = account_disabled()
            await runtime.broker.deliver(
                [args.user_id], Disconnect(code=refusal.close_code, reason=refusal.reason)
            )
        elif args.command == "enable":
            await users.set_disabled(runtime.db, args.user_id, False)
            await announce_change(runtime.broker, args.user_id, disabled=False)
        return await users.describe(runtime.db, args.user_id)
    finally:
        await runtime.close()


def main() -> None:
    args = _parser().parse_args()
    settings = ServiceSettings()
    if args.topic == "migrate":
        print(json.dumps(asyncio.run(_migrate(settings))))
        return
    args.user_id = normalize_user_id(args.user_id)
    if not args.user_id or (settings.auth_mode is AuthMode.DEV and not is_vn_mobile(args.user_id)):
        sys.exit(f"chat-admin: not a valid user id: {args.user_id!r}")
    result = asyncio.run(_run(args, settings))
    print(json.dumps(result, default=str))
