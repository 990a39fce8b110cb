"""Write the Postman collection (v2.1) and `make run` environment from the OpenAPI documents.

Usage: `uv run --no-sync python scripts/postman.py [OUT_DIR]` (`make contracts`; default
docs/postman/). Every REST operation of messaging and presence becomes a request, with an
example body drawn from its schema; creating a conversation or sending a message stores the
new id in the environment for the next requests. The WebSocket steps of the API document
(Postman's v2.1 format cannot hold WebSocket requests) are a folder of written steps.
The output is deterministic, so a test can fail when the committed files are stale.
"""

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from chat_core.close_codes import CLOSE_CODES
from messaging.config import MessagingSettings
from messaging.main import create_app as create_messaging
from presence.config import PresenceSettings
from presence.main import create_app as create_presence

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "docs" / "postman"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
COLLECTION = "chat-backend.postman_collection.json"
ENVIRONMENT = "chat-local.postman_environment.json"
SKIP = {"/healthz", "/readyz", "/metrics"}
Json = dict[str, Any]

# Path and query parameters filled from the environment.
VARIABLES = {
    "conversation_id": "{{conversationId}}",
    "message_id": "{{messageId}}",
    "user_id": "{{peerId}}",
    "userIds": "{{peerId}}",
    "before": "{{messageId}}",
    "since": "{{messageId}}",
}
# Body fields with a value a person would send.
BODY_VALUES: Json = {
    "participantIds": ["{{peerId}}"],
    "name": "Postman test",
    "content": "Hello from Postman",
    "messageType": "text",
    "clientMessageId": "{{$guid}}",
}
# After these operations, keep the new id for the requests that follow.
SAVE = {
    ("post", "/conversations"): ("conversationId", "id"),
    ("post", "/conversations/{conversation_id}/messages"): ("messageId", "messageId"),
}


def openapi_documents() -> dict[str, Json]:
    return {
        "messaging": create_messaging(MessagingSettings()).openapi(),
        "presence": create_presence(PresenceSettings()).openapi(),
    }


def resolve(document: Json, schema: Json) -> Json:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def example(document: Json, schema: Json, name: str | None = None) -> Any:
    schema = resolve(document, schema)
    if name in BODY_VALUES:
        return BODY_VALUES[name]
    if "examples" in schema:
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if "anyOf" in schema:
        return example(document, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: example(document, value, key) for key, value in properties.items()}
    if kind == "array":
        return [example(document, schema.get("items", {}))]
    return {"integer": 1, "number": 1, "boolean": True}.get(str(kind), "string")


def request_item(document: Json, service: str, path: str, method: str, operation: Json) -> Json:
    host = f"{{{{{service}Url}}}}"
    segments = [
        f":{part[1:-1]}" if part.startswith("{") else part for part in path.strip("/").split("/")
    ]
    url: Json = {
        "raw": host + "/" + "/".join(segments),
        "host": [host],
        "path": segments,
    }
    query = []
    variables = []
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        description = parameter.get("description", "")
        if parameter["in"] == "path":
            variables.append(
                {"key": name, "value": VARIABLES.get(name, ""), "description": description}
            )
        elif parameter["in"] == "query":
            entry = {
                "key": name,
                "value": VARIABLES.get(name, str(example(document, parameter["schema"]))),
                "description": description,
            }
            if not parameter.get("required"):
                entry["disabled"] = True
            query.append(entry)
    if query:
        url["query"] = query
        enabled = [f"{q['key']}={q['value']}" for q in query if not q.get("disabled")]
        if enabled:
            url["raw"] += "?" + "&".join(enabled)
    if variables:
        url["variable"] = variables
    request: Json = {
        "method": method.upper(),
        "header": [],
        "url": url,
        "description": "\n\n".join(
            filter(None, [operation.get("description"), responses_text(operation)])
        ),
    }
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(example(document, body["schema"]), indent=2),
            "options": {"raw": {"language": "json"}},
        }
    item: Json = {"name": f"{method.upper()} {path}", "request": request}
    saved = SAVE.get((method, path))
    if saved:
        variable, field = saved
        item["event"] = [
            {
                "listen": "test",
                "script": {
                    "type": "text/javascript",
                    "exec": [
                        "if (pm.response.code < 300) {",
                        f'  pm.environment.set("{variable}", pm.response.json().{field});',
                        "}",
                    ],
                },
            }
        ]
    return item


def responses_text(operation: Json) -> str:
    lines = [
        f"- {code}: {answer.get('description', '')}"
        for code, answer in operation.get("responses", {}).items()
    ]
    return "Responses:\n" + "\n".join(lines)


def websocket_steps() -> Json:
    codes = "\n".join(
        f"- {int(code)}: {meaning}" for code, (meaning, _) in sorted(CLOSE_CODES.items())
    )
    frames = [
        ("Heartbeat", {"event": "heartbeat"}, "Answered with `heartbeat_ack`."),
        (
            "Typing",
            {"event": "typing", "conversationId": "{{conversationId}}"},
            "The other members get `typing` with your userId.",
        ),
        (
            "Message read",
            {
                "event": "message_read",
                "conversationId": "{{conversationId}}",
                "messageId": "{{messageId}}",
            },
            "The other members (and your other devices) get `message_read`.",
        ),
        (
            "Status change",
            {"event": "status_change", "status": "away"},
            "Answered with `status_change_ack`; contacts get `user_status_change`.",
        ),
    ]
    steps = [
        "Postman's collection format cannot hold WebSocket requests; create one with New > "
        "WebSocket and follow these steps.",
        "1. Connect to `{{wsUrl}}/ws/{{userId}}?token={{token}}` (a raw `+` works, as does "
        "`%2B`). To resume after a disconnect add `&since=<last messageId>`: missed messages "
        "are replayed, then `replay_done`.",
        "2. If the connection is closed at once, read the close code:\n" + codes,
        *[
            f"{n}. {title}: send `{json.dumps(frame)}`. {effect}"
            for n, (title, frame, effect) in enumerate(frames, start=3)
        ],
        f"{len(frames) + 3}. Send a message with the REST request `POST "
        "/conversations/{conversation_id}/messages` (from this collection) and watch "
        "`new_message` arrive on the socket.",
        "The full protocol: `GET {{wsHttpUrl}}/asyncapi.json` (AsyncAPI 3.0).",
    ]
    return {"name": "WebSocket (steps)", "description": "\n\n".join(steps), "item": []}


def collection(documents: dict[str, Json]) -> Json:
    folders = []
    for service, document in documents.items():
        items = [
            request_item(document, service, path, method, operation)
            for path, operations in document["paths"].items()
            if path not in SKIP
            for method, operation in operations.items()
        ]
        folders.append(
            {"name": service, "description": document["info"].get("summary", ""), "item": items}
        )
    folders.append(websocket_steps())
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "chat-backend/postman")),
            "name": "chat-backend",
            "description": "Generated by scripts/postman.py from the services' OpenAPI "
            "documents (`make contracts`). Select the `chat local (make run)` environment.",
            "schema": SCHEMA,
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{token}}"}]},
        "item": folders,
    }


def environment() -> Json:
    values = {
        "messagingUrl": "http://127.0.0.1:8001",
        "presenceUrl": "http://127.0.0.1:8002",
        "wsUrl": "ws://127.0.0.1:8000",
        "wsHttpUrl": "http://127.0.0.1:8000",
        "userId": "+84912345678",
        "token": "+84912345678",
        "peerId": "+84987654321",
        "conversationId": "",
        "messageId": "",
    }
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "chat-backend/postman/local")),
        "name": "chat local (make run)",
        "values": [
            {"key": k, "value": v, "type": "default", "enabled": True} for k, v in values.items()
        ],
        "_postman_variable_scope": "environment",
    }


def render() -> dict[str, str]:
    """File name -> text."""

    def dump(value: Json) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"

    return {COLLECTION: dump(collection(openapi_documents())), ENVIRONMENT: dump(environment())}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)


if __name__ == "__main__":
    main()
