"""The WebSocket protocol as an AsyncAPI 3.0 document, generated from the frame models.

`events.py` is the one definition of every frame; this module only describes it. The edge
serves the document at `GET /asyncapi.json`; `docs/asyncapi.yaml` is the same document written
by `make contracts` (a test fails when it is stale).

The document describes the edge as the application: frames a client sends are operations the
edge `receive`s, frames a client receives are operations the edge `send`s.
"""

import functools
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chat_core import VERSION
from chat_core.close_codes import CLOSE_CODES, ClientAction
from chat_core.events import ClientFrame, ServerFrame

SCHEMAS_REF = "#/components/schemas/{model}"

_ACTIONS = {
    ClientAction.RECONNECT: "reconnect with backoff and resume with `since`",
    ClientAction.BACK_OFF: "reconnect later, with a longer backoff",
    ClientAction.STOP: "do not reconnect; tell the user",
}

_DIRECTIONS = {"receive": "client to server", "send": "server to client"}

_DESCRIPTIONS = {
    "ClientTyping": "The user is typing in a conversation (members only; rate-limited).",
    "ClientMessageRead": "Mark a message, and everything before it, read.",
    "ClientHeartbeat": "Keep the connection alive and the user's last-active time fresh; "
    "answered at once with `heartbeat_ack`. Send one every 30 s.",
    "ClientStatusChange": "Set the user's presence status; answered with `status_change_ack`.",
    "NewMessage": "A message in one of the user's conversations, including the user's own "
    "(from any device). Delivered at least once: de-duplicate by `messageId`.",
    "ReplayDone": "Ends a resume's replay (after the presence snapshot and the missed "
    "`new_message` frames); live frames follow. Store `nextSince` as the next `since`; when "
    "`truncated`, page the rest with `GET /sync?since=<nextSince>`.",
    "ConversationAnnounced": "The user was added to a conversation (its REST shape), sent to "
    "every participant when it is created.",
    "TypingIndicator": "Another member is typing; show it for about 3 s.",
    "MessageReadReceipt": "A member read a message (also sent to the reader's other devices).",
    "UserStatusChange": "A contact's presence changed. On admission one is sent per contact "
    "who is not offline (the presence snapshot).",
    "HeartbeatAck": "The answer to `heartbeat`.",
    "StatusChangeAck": "The answer to `status_change`, with the status now in force.",
    "ErrorFrame": "A frame was not understood or not allowed; the socket stays open.",
}


def _members(union: object) -> list[type[BaseModel]]:
    """The models of a discriminated union alias, in declaration order."""
    while get_origin(union) is not None and get_origin(union) not in (Union, types.UnionType):
        union = get_args(union)[0]  # Annotated[Union[...], Field(...)] -> Union[...]
    return [member for member in get_args(union) if isinstance(member, type)]


def _event_name(model: type[BaseModel]) -> str:
    annotation = model.model_fields["event"].annotation
    assert get_origin(annotation) is Literal, model
    return str(get_args(annotation)[0])


def _operation_id(prefix: str, model: type[BaseModel]) -> str:
    words = _event_name(model).split("_")
    return prefix + "".join(word.capitalize() for word in words)


def _close_codes_table() -> str:
    rows = [
        f"| {int(code)} | {meaning} | {_ACTIONS[action]} |"
        for code, (meaning, action) in sorted(CLOSE_CODES.items())
    ]
    return "\n".join(["| code | meaning | what the client does |", "| --- | --- | --- |", *rows])


def _schemas(
    models: list[type[BaseModel]], mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, mode) for model in models], by_alias=True, ref_template=SCHEMAS_REF
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    for model in models:
        schema = schemas[model.__name__]
        # `event` has a default in the server models, but it is on every frame sent.
        required = schema.setdefault("required", [])
        if "event" not in required:
            required.insert(0, "event")
        schema.setdefault("description", _DESCRIPTIONS.get(model.__name__, ""))
    return schemas


@functools.cache
def document() -> dict[str, Any]:
    client_models = _members(ClientFrame)
    server_models = _members(ServerFrame)
    schemas = _schemas(client_models, "validation")
    server_schemas = _schemas(server_models, "serialization")
    for name in server_schemas.keys() & schemas.keys():
        if server_schemas[name] != schemas[name]:
            raise RuntimeError(f"schema name {name} means two things")
    schemas.update(server_schemas)

    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for direction, models in (("receive", client_models), ("send", server_models)):
        for model in models:
            event = _event_name(model)
            key = model.__name__
            messages[key] = {
                "name": event,
                "title": f"{event} ({_DIRECTIONS[direction]})",
                "summary": _DESCRIPTIONS.get(key, model.__doc__ or event),
                "contentType": "application/json",
                "payload": {"$ref": SCHEMAS_REF.format(model=key)},
            }
            prefix = "on" if direction == "receive" else "send"
            operations[_operation_id(prefix, model)] = {
                "action": direction,
                "channel": {"$ref": "#/channels/userSocket"},
                "summary": _DESCRIPTIONS.get(key, event),
                "messages": [{"$ref": f"#/channels/userSocket/messages/{key}"}],
            }

    close_codes = [
        {"code": int(code), "meaning": meaning, "clientAction": action.name.lower()}
        for code, (meaning, action) in sorted(CLOSE_CODES.items())
    ]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chat WebSocket API",
            "version": VERSION,
            "description": (
                "One socket per device at `/ws/{userId}?token=...`. Frames are JSON text; "
                "fields are camelCase; clients ignore fields and events they do not know.\n\n"
                "Some refusals come before the upgrade, as a plain HTTP answer with a JSON "
                "`detail`: 403 when the page's `Origin` is not allowed, 429 with `Retry-After` "
                "when the client's address opens sockets too fast or already holds too many. "
                "A browser sees only a failed connect; back off and retry. Every other refusal "
                "comes after it: the socket is accepted, then closed with a code and a short "
                "reason.\n\n" + _close_codes_table() + "\n\n"
                "Resume: reconnect with `since` (the last `messageId` received, or the last "
                "`nextSince`). The server sends the presence snapshot, replays every "
                "`new_message` after the cursor, then `replay_done`, then live frames; no gap "
                "and no duplicate on that socket."
            ),
        },
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "`make run` (AUTH_MODE=dev).",
                "security": [{"$ref": "#/components/securitySchemes/devToken"}],
            },
            "production": {
                "host": "{host}",
                "protocol": "wss",
                "description": "Behind TLS, AUTH_MODE=firebase.",
                "variables": {"host": {"default": "chat.example.com"}},
                "security": [{"$ref": "#/components/securitySchemes/firebaseIdToken"}],
            },
        },
        "channels": {
            "userSocket": {
                "address": "/ws/{userId}",
                "title": "A user's device socket",
                "description": "The path's user must be the token's user (else 4002).",
                "parameters": {
                    "userId": {
                        "description": "The user's id; in dev mode the phone number (+84 and "
                        "nine digits). A raw `+` and `%2B` are both accepted.",
                        "examples": ["+84912345678"],
                    }
                },
                "messages": messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "Dev mode: the phone number. Firebase mode: "
                                    "an ID token. Missing or invalid: close 4001.",
                                },
                                "since": {
                                    "type": "string",
                                    "description": "Resume cursor: the last `messageId` "
                                    "received or the last `replay_done.nextSince`. Missed "
                                    "messages are replayed before live frames.",
                                },
                            },
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
                "x-close-codes": close_codes,
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "devToken": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "AUTH_MODE=dev: the user's Vietnamese mobile number in "
                    "E.164 (+84 and nine digits), the same as the user id.",
                },
                "firebaseIdToken": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "AUTH_MODE=firebase: a Firebase ID token for the user.",
                },
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line descriptions as `|` blocks: the committed file stays readable in review.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def main() -> None:
    """`python -m chat_core.asyncapi [PATH]`: write the YAML document (stdout without PATH)."""
    text = to_yaml(document())
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
