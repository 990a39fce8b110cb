"""One version and one licence for every package and document, and the documents a team
checks before adopting the project."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from chat_core import VERSION

REPO = Path(__file__).resolve().parents[3]
WORKSPACE = ("pyproject.toml", "libs/*/pyproject.toml", "services/*/pyproject.toml", "bench/*.toml")
PYPROJECTS = sorted(path for pattern in WORKSPACE for path in REPO.glob(pattern))
PACKAGE_JSONS = [REPO / "clients/web/package.json", REPO / "tools/contracts/package.json"]


@pytest.mark.parametrize("path", PYPROJECTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_python_package_has_the_version_and_the_licence(path: Path) -> None:
    project = tomllib.loads(path.read_text())["project"]
    assert project["version"] == VERSION
    assert project["license"] == "Apache-2.0"


@pytest.mark.parametrize("path", PACKAGE_JSONS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_npm_package_has_the_version_and_the_licence(path: Path) -> None:
    package = json.loads(path.read_text())
    assert package["version"] == VERSION
    assert package["license"] == "Apache-2.0"
    lock = json.loads((path.parent / "package-lock.json").read_text())
    assert lock["packages"][""]["version"] == VERSION
    assert lock["packages"][""]["license"] == "Apache-2.0"


def test_the_api_documents_carry_the_version() -> None:
    from chat_core import asyncapi
    from messaging.config import MessagingSettings
    from messaging.main import create_app as messaging_app
    from presence.config import PresenceSettings
    from presence.main import create_app as presence_app
    from ws_edge.config import EdgeSettings
    from ws_edge.main import create_app as edge_app

    assert messaging_app(MessagingSettings()).openapi()["info"]["version"] == VERSION
    assert presence_app(PresenceSettings()).openapi()["info"]["version"] == VERSION
    assert edge_app(EdgeSettings()).api.openapi()["info"]["version"] == VERSION
    assert asyncapi.document()["info"]["version"] == VERSION
    generated = yaml.safe_load((REPO / "docs/asyncapi.yaml").read_text())
    assert generated["info"]["version"] == VERSION


def test_the_changelog_starts_at_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.M)
    assert released[0] == VERSION
    assert "## [Unreleased]" in text


def test_the_licence_and_the_policies_exist() -> None:
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence
    security = (REPO / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in security
    assert "## In scope" in security
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    for must in ("make test", "make bench", "fails without it"):
        assert must in contributing
