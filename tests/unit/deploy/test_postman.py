"""docs/postman/ is generated from the OpenAPI documents and must not go stale."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("postman", ROOT / "scripts" / "postman.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_postman_files_are_current() -> None:
    postman = generator()
    for name, text in postman.render().items():
        committed = (ROOT / "docs" / "postman" / name).read_text()
        assert committed == text, f"docs/postman/{name} is stale: run `make contracts`"


def test_every_rest_operation_is_a_request() -> None:
    postman = generator()
    collection = json.loads(postman.render()[postman.COLLECTION])
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    names = {item["name"] for folder in collection["item"] for item in folder["item"]}
    for document in postman.openapi_documents().values():
        for path, operations in document["paths"].items():
            if path in postman.SKIP:
                continue
            for method in operations:
                assert f"{method.upper()} {path}" in names
    steps = next(f for f in collection["item"] if f["name"].startswith("WebSocket"))
    assert "{{wsUrl}}/ws/{{userId}}?token={{token}}" in steps["description"]
