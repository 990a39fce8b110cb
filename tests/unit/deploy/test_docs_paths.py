"""Every repository path the documentation names exists, and no link leaves the repository
(a clone has no ../shared)."""

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    [*REPO.glob("*.md"), *REPO.glob("docs/*.md"), *REPO.glob("libs/*/README.md")],
)
TOP = "docs|scripts|libs|services|tests|clients|deploy|tools|bench|\\.ci"
# A path: one of the top-level directories, then path characters. What follows it (a dot
# ending a sentence, a colon, a closing bracket) is not part of it.
PATH = re.compile(rf"(?<![\w/.$-])((?:{TOP})/[\w./-]*[\w/])")
FILES = re.compile(
    r"(?<![\w/.-])(Dockerfile|docker-compose\.yml|\.env\.example|LICENSE|Makefile|"
    r"(?:README|CHANGELOG|SECURITY|CONTRIBUTING)\.md|pyproject\.toml|uv\.lock)(?![\w.-])"
)
# Made by a build, not kept in the repository.
GENERATED = ("clients/web/dist", "clients/web/node_modules")
# Known and owned elsewhere: docs/performance.md is being corrected with the benchmark work.
# Remove an entry when its document no longer names the path.
KNOWN_STALE = {"docs/performance.md": {"bench/results/20261124T233018Z-all.json"}}


@cache
def in_a_clone() -> frozenset[str]:
    """What a fresh clone has: the tracked files and their directories (a file this checkout
    happens to hold does not count)."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    paths = set(listed)
    for path in listed:
        parts = path.split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(paths)


def named_paths(text: str) -> set[str]:
    # Placeholders (tests/LAYER/AREA, test_<module>.py, {userId}) are not paths.
    return {
        path
        for path in PATH.findall(text) + FILES.findall(text)
        if not re.search(r"[A-Z]{4,}|\.\.\.", path) or path in ("LICENSE",)
    }


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_a_document_names_exists(document: Path) -> None:
    name = str(document.relative_to(REPO))
    missing = sorted(
        path
        for path in named_paths(document.read_text())
        if not path.startswith(GENERATED)
        and path.rstrip("/") not in in_a_clone()
        and path not in KNOWN_STALE.get(name, set())
    )
    assert not missing, f"{name} names {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_links_outside_the_repository(document: Path) -> None:
    assert "../shared" not in document.read_text()


def test_the_check_finds_a_missing_path() -> None:
    assert named_paths("see `docs/nowhere.md`, and docs/protocol.md.") == {
        "docs/nowhere.md",
        "docs/protocol.md",
    }
