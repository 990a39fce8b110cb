"""The AsyncAPI document: generated from the frame models, committed, and valid."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chat_core import asyncapi
from chat_core.close_codes import CloseCode
from chat_core.events import CLIENT_EVENTS

ROOT = Path(__file__).resolve().parents[3]
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


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is required (make test installs it)"
    assert (VALIDATOR.parent / "node_modules").is_dir(), "run scripts/ensure_node_deps.sh"
    return subprocess.run(
        [node, str(VALIDATOR), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


BREAKAGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "unknown-action": lambda doc: doc["operations"]["sendNewMessage"].update(action="publish"),
    "dangling-ref": lambda doc: doc["channels"]["userSocket"]["messages"].pop("NewMessage"),
}


@pytest.mark.timeout(120)
def test_asyncapi_parser_accepts_ours_and_rejects_broken_ones(tmp_path: Path) -> None:
    broken = []
    for name, breakage in BREAKAGES.items():
        doc = json.loads(json.dumps(asyncapi.document()))
        breakage(doc)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        broken.append(path)
    # One node process for all three: the parser takes seconds to load on a busy machine.
    result = validate(COMMITTED, *broken)
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert lines[0].startswith(f"VALID {COMMITTED}: AsyncAPI 3.0.0"), result.stdout
    assert [line.split()[0] for line in lines[1:]] == ["INVALID"] * len(broken), result.stdout
    assert result.returncode == 1


def test_it_says_which_refusals_come_before_the_upgrade() -> None:
    # ws_edge.upgrade answers 403 and 429 in HTTP; the document once said every refusal
    # came after the upgrade.
    description = asyncapi.document()["info"]["description"]
    before = description.split("Every other refusal")[0]
    assert "before the upgrade" in before
    assert "403" in before
    assert "429" in before
    assert "Refusals happen after the upgrade" not in description
