"""The AsyncAPI document: generated from the frame models, committed, and valid."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chat_core import asyncapi
from chat_core.close_codes import CloseCode
from chat_core.events import CLIENT_EVENTS

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "tools" / "contracts" / "validate-asyncapi.mjs"


def test_committed_document_is_current() -> None:
    assert COMMITTED.read_text() == asyncapi.to_yaml(asyncapi.document()), (
        "docs/asyncapi.yaml is stale: run `make contracts` and commit the result"
    )


def test_document_covers_every_frame_close_code_and_auth() -> None:
    doc = asyncapi.document()
    channel = doc["channels"]["userSocket"]
    actions: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in doc["operations"].values():
        [ref] = operation["messages"]
        key = ref["$ref"].rsplit("/", 1)[1]
        actions[operation["action"]].add(channel["messages"][key]["name"])
    assert actions["receive"] == set(CLIENT_EVENTS)
    assert {
        "new_message",
        "typing",
        "message_read",
        "user_status_change",
        "heartbeat_ack",
        "status_change_ack",
        "error",
    } <= actions["send"]
    assert {entry["code"] for entry in channel["x-close-codes"]} == {int(c) for c in CloseCode}
    assert set(channel["bindings"]["ws"]["query"]["properties"]) == {"token", "since"}
    assert set(doc["components"]["securitySchemes"]) == {"devToken", "firebaseIdToken"}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is required (make test installs it)"
    assert (VALIDATOR.parent / "node_modules").is_dir(), "run scripts/ensure_node_deps.sh"
    return subprocess.run(
        [node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_asyncapi_parser_accepts_the_committed_document() -> None:
    result = validate(COMMITTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VALID: AsyncAPI 3.0.0" in result.stdout


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc["operations"]["sendNewMessage"].update(action="publish"),
        lambda doc: doc["channels"]["userSocket"]["messages"].pop("NewMessage"),
    ],
)
def test_asyncapi_parser_rejects_a_broken_document(breakage: Any, tmp_path: Path) -> None:
    doc = json.loads(json.dumps(asyncapi.document()))
    breakage(doc)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    result = validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr
