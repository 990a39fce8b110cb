"""Just enough of a Dockerfile reader to replay an image's build steps without Docker.

It understands what our Dockerfile uses: global and stage ARGs, `FROM image AS name` (stages
built on stages, an ARG in the base name), ENV, WORKDIR, COPY (from the context or
`--from=stage`), RUN (with BuildKit `--mount=` flags), USER, CMD. The build context is filtered
through `.dockerignore` as Docker does: the last matching pattern wins, `!` re-includes.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for keyword, arguments in _logical_lines(text):
            if keyword == "FROM":
                parts = arguments.split()
                named = len(parts) == 3 and parts[1].upper() == "AS"
                name = parts[2] if named else str(len(stages))
                stages.append(Stage(name=name, base=parts[0]))
            elif not stages and keyword == "ARG":
                key, _, value = arguments.partition("=")
                global_args[key.strip()] = value.strip()
            elif stages:
                stages[-1].instructions.append(Instruction(keyword, arguments))
        return cls(global_args, stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def chain(self, target: str, build_args: dict[str, str] | None = None) -> list[Stage]:
        """The stages `target` is built from, the first one based on an outside image."""
        args = {**self.global_args, **(build_args or {})}
        names = {stage.name for stage in self.stages}
        chain: list[Stage] = []
        stage = self.stage(target)
        while True:
            chain.insert(0, stage)
            base = substitute(stage.base, args)
            if base not in names:
                return chain
            stage = self.stage(base)


def substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), value)


def _logical_lines(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        lines.append((keyword.upper(), arguments.strip()))
    return lines


def split_flags(arguments: str) -> tuple[dict[str, str], list[str]]:
    """`--from=x --chown=y a b c` -> ({"from": "x", "chown": "y"}, ["a", "b", "c"])."""
    words = shlex.split(arguments)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def env_assignments(arguments: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(arguments))


class DockerIgnore:
    def __init__(self, patterns: list[str]) -> None:
        self._rules = [
            (pattern.startswith("!"), _pattern_regex(pattern.lstrip("!"))) for pattern in patterns
        ]

    @classmethod
    def read(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        text = path.read_text() if path.exists() else ""
        lines = (line.strip() for line in text.splitlines())
        return cls([line for line in lines if line and not line.startswith("#")])

    def excludes(self, relative: str) -> bool:
        parts = PurePosixPath(relative).parts
        # A pattern naming a directory excludes everything under it.
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negated, regex in self._rules:
            if any(regex.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def copy_from_context(
    context: Path, ignore: DockerIgnore, sources: list[str], destination: Path, *, into: bool
) -> list[str]:
    """COPY's semantics for context files: a directory's contents go into the destination, a
    file goes into it when `into` (the destination ended with '/') or there are several
    sources. Returns the context files copied."""
    copied: list[str] = []
    into_directory = into or len(sources) > 1
    for source in sources:
        path = context / source
        if not path.exists() or ignore.excludes(source.rstrip("/")):
            raise FileNotFoundError(f"COPY {source}: not in the build context")
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = file.relative_to(context).as_posix()
                if ignore.excludes(relative):
                    continue
                target = destination / file.relative_to(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
                copied.append(relative)
        else:
            target = destination / path.name if into_directory else destination
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(source)
    return copied
