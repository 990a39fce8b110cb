"""The browser client's pure logic (clients/web/test/*.test.js), run by Vitest."""

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "clients" / "web"


@pytest.mark.timeout(120)
def test_vitest_suite_passes() -> None:
    npx = shutil.which("npx")
    assert npx, "npx is required (make test installs node and npm)"
    assert (WEB / "node_modules").is_dir(), "run scripts/ensure_node_deps.sh"
    result = subprocess.run(
        [npx, "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
