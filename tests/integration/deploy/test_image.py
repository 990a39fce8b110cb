"""The Docker image's build, replayed without Docker: the Dockerfile's own COPY and `uv sync`
steps, run with uv on exactly the files those COPY lines take from the build context (after
.dockerignore). A file the install needs but no COPY brings in fails here as it would in
`docker build`. uv works offline from its cache, which `make install` filled from the same lock.
"""

import os
import posixpath
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.dockerfile import (
    Dockerfile,
    DockerIgnore,
    copy_from_context,
    env_assignments,
    split_flags,
    substitute,
)

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("ws-edge", "messaging", "presence", "chat-admin")
DEV_ONLY = ("pytest", "mypy", "ruff")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse((REPO / "Dockerfile").read_text())


@dataclass
class Replay:
    """A build replayed under `root` (the image's `/`), one step at a time."""

    root: Path
    args: dict[str, str]
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    ignore: DockerIgnore = field(default_factory=lambda: DockerIgnore.read(REPO))

    def host(self, image_path: str) -> Path:
        return self.root / posixpath.join(self.workdir, image_path).lstrip("/")

    def run_stage(self, dockerfile: Dockerfile, name: str) -> None:
        for instruction in dockerfile.stage(name).instructions:
            arguments = substitute(instruction.arguments, {**self.args, **self.env})
            if instruction.keyword == "ARG":
                key, _, default = arguments.partition("=")
                self.args.setdefault(key, default)
            elif instruction.keyword == "ENV":
                self.env.update(env_assignments(arguments))
            elif instruction.keyword == "WORKDIR":
                self.workdir = posixpath.join(self.workdir, arguments)
                self.host(".").mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                self.copy(dockerfile, arguments)
            elif instruction.keyword == "RUN":
                self.run(arguments)
            else:
                raise AssertionError(f"a build stage should not need {instruction.keyword}")

    def copy(self, dockerfile: Dockerfile, arguments: str) -> None:
        flags, words = split_flags(arguments)
        *sources, destination = words
        if "from" in flags:
            # Only the uv binary comes from another image; the local uv stands in for it.
            base = dockerfile.stage(flags["from"]).base
            assert base.startswith("ghcr.io/astral-sh/uv:"), arguments
            return
        self.copied += copy_from_context(
            REPO, self.ignore, sources, self.host(destination), into=destination.endswith("/")
        )

    def run(self, arguments: str) -> None:
        words = shlex.split(arguments)
        while words[0].startswith("--mount="):
            assert "type=cache" in words.pop(0), "only cache mounts: bind mounts skip COPY"
        assert words[:2] == ["uv", "sync"], f"unexpected build step: {arguments}"
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
        }
        environment.update(self.env)
        # The image's Python is not on this machine: the test's interpreter stands in for it.
        environment.update(UV_OFFLINE="1", UV_PYTHON=sys.executable, UV_NO_PROGRESS="1")
        result = subprocess.run(
            [shutil.which("uv") or "uv", *words[1:]],
            cwd=self.host("."),
            env=environment,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"{arguments}\n{result.stderr[-3000:]}"


def installed(venv: Path, program: str) -> bool:
    return (venv / "bin" / program).exists()


def test_image_installs_from_the_files_its_copy_lines_bring(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    replay = Replay(tmp_path, dict(dockerfile.global_args))
    chain = dockerfile.chain("venv")
    assert [stage.name for stage in chain] == ["builder", "venv-no", "venv"]
    for stage in chain:
        replay.run_stage(dockerfile, stage.name)
    venv = replay.host(".venv")
    assert all(installed(venv, program) for program in SERVICES)
    assert not installed(venv, "chat-bench"), "bench is only in the image when BENCH=yes"
    assert not any(installed(venv, tool) for tool in DEV_ONLY), "dev dependencies in the image"
    assert not any(path.startswith(("tests/", "bench/src")) for path in replay.copied)

    # BENCH=yes adds chat-bench on top of the same builder.
    assert [stage.name for stage in dockerfile.chain("venv", {"BENCH": "yes"})] == [
        "builder",
        "venv-yes",
        "venv",
    ]
    replay.run_stage(dockerfile, "venv-yes")
    assert installed(venv, "chat-bench")

    # --no-editable: the environment works with the source tree gone, as in the runtime stage.
    for source in ("libs", "services", "bench"):
        shutil.rmtree(replay.host(source))
    for program in (*SERVICES, "chat-bench"):
        result = subprocess.run(
            [str(venv / "bin" / program), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{program} --help\n{result.stderr[-2000:]}"


def test_runtime_stage_takes_only_the_environment_and_runs_unprivileged(
    dockerfile: Dockerfile,
) -> None:
    runtime = dockerfile.stages[-1]
    assert runtime.base == "${PYTHON_IMAGE}", "the runtime starts from the slim Python image"
    copies = [i.arguments for i in runtime.instructions if i.keyword == "COPY"]
    assert copies == ["--from=venv --chown=chat:chat /app/.venv /app/.venv"]
    users = [i.arguments for i in runtime.instructions if i.keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    builder = dockerfile.stage("builder").instructions
    workdir = [i.arguments for i in builder if i.keyword == "WORKDIR"]
    assert workdir == ["/app"], "the venv's paths must be the same in builder and runtime"


def test_image_does_not_default_to_dev_auth(dockerfile: Dockerfile) -> None:
    env: dict[str, str] = {}
    for instruction in dockerfile.stages[-1].instructions:
        if instruction.keyword == "ENV":
            env.update(env_assignments(instruction.arguments))
    assert env.get("AUTH_MODE") == "firebase"
    assert "ALLOW_DEV_AUTH_ON_NETWORK" not in env


def test_the_lock_the_image_installs_is_current() -> None:
    """The image installs uv.lock as it is (--frozen); it must match every pyproject."""
    result = subprocess.run(
        [shutil.which("uv") or "uv", "lock", "--check", "--offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_pinned_uv_and_ignored_context(dockerfile: Dockerfile) -> None:
    version = dockerfile.global_args["UV_VERSION"]
    assert version[:1].isdigit(), "uv is pinned to a version, not latest"
    ignore = DockerIgnore.read(REPO)
    for path in (".git/HEAD", ".venv/bin/python", ".env", "bench/results/x.json", "tests/x.py"):
        assert ignore.excludes(path), path
    for path in ("uv.lock", "libs/chat-core/pyproject.toml", "services/ws-edge/src/ws_edge/x.py"):
        assert not ignore.excludes(path), path
