"""Write docs/configuration.md and .env.example from the pydantic-settings classes.

    uv run --no-sync python scripts/config_reference.py          # rewrite both files
    uv run --no-sync python scripts/config_reference.py --check  # exit 1 if either is stale

A setting's description is its field's `Field(description=...)`, so the classes stay the one
source; a setting without one is an error. tests/unit/deploy/test_configuration_docs.py runs
the check in `make test`.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from chat_core.settings import ServiceSettings
from chat_core.testing import TestSettings
from messaging.config import MessagingSettings
from presence.config import PresenceSettings
from ws_edge.config import EdgeSettings

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "configuration.md"
ENV_EXAMPLE = REPO / ".env.example"

# (heading, class, who reads it); each class lists only the fields it adds to its base.
SECTIONS: tuple[tuple[str, type[BaseSettings], str], ...] = (
    ("Every service", ServiceSettings, "ws-edge, messaging, presence and chat-admin"),
    ("ws-edge", EdgeSettings, "`ws-edge`"),
    ("messaging", MessagingSettings, "`messaging`"),
    ("presence", PresenceSettings, "`presence`"),
)
TEST_SECTION = ("Test hooks (never in production)", TestSettings, "tests only")


@dataclass(frozen=True)
class Setting:
    variable: str
    type: str
    default: str
    limits: str
    description: str
    required: bool


def type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        # Validators in the metadata are how a value is parsed, not what it is.
        return type_name(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(str(member.value) for member in annotation)
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "unset"
    if annotation is SecretStr:
        return "str (secret)"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> tuple[str, bool]:
    if field.default_factory is not None:
        factory = field.default_factory
        if getattr(factory, "__name__", "") == "<lambda>":
            # A literal default wrapped in a lambda (a list): show the value itself.
            value = factory()  # type: ignore[call-arg]
            return f"`{','.join(map(str, value)) if isinstance(value, list) else value}`", False
        if factory in (list, dict):
            return "empty", False
        doc = inspect.getdoc(factory)
        return (doc.splitlines()[0] if doc else "computed"), False
    if field.default is PydanticUndefined:
        return "(required)", True
    value = field.default
    if value is None:
        return "unset", False
    if value == "" or value == SecretStr(""):
        return "empty", False
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, SecretStr):
        # A default is public by definition (it is in the source); a configured value is not.
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower(), False
    return f"`{value}`", False


def limits_text(field: FieldInfo) -> str:
    words = {
        annotated_types.Ge: ("≥", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("≤", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    parts = []
    for constraint in field.metadata:
        for kind, (symbol, attribute) in words.items():
            if isinstance(constraint, kind):
                parts.append(f"{symbol} {getattr(constraint, attribute)}")
    return ", ".join(parts)


def own_settings(cls: type[BaseSettings]) -> Iterator[Setting]:
    base_fields: set[str] = set()
    for base in cls.__mro__[1:]:
        if isinstance(base, type) and issubclass(base, BaseSettings) and base is not BaseSettings:
            base_fields.update(base.model_fields)
    for name, field in cls.model_fields.items():
        if name in base_fields:
            continue
        default, required = default_text(field)
        if not field.description:
            raise ValueError(f"{cls.__name__}.{name} has no Field(description=...)")
        description = field.description
        yield Setting(
            variable=(field.validation_alias or name).__str__().upper(),
            type=type_name(field.annotation),
            default=default,
            limits=limits_text(field),
            description=description,
            required=required,
        )


def render_doc() -> str:
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/config_reference.py from the pydantic-settings classes; do",
        "     not edit by hand. tests/unit/deploy/test_configuration_docs.py fails when it is",
        "     stale. -->",
        "",
        "Every setting is an environment variable (names are case-insensitive), or a",
        "`NAME=value` line in a `.env` file in the service's working directory; the environment",
        "wins. `.env.example` lists them all. Secrets (`AMQP_URL`, `AMQP_URLS` and `MONGO_URL`,",
        "typed as secrets so no `repr`, log line or `--help` shows them, and the Firebase",
        "credentials file) belong in the environment or a secret store, never in the image.",
        "How to run in Firebase mode: docs/deployment.md.",
        "",
    ]
    for heading, cls, readers in (*SECTIONS, TEST_SECTION):
        out += [f"## {heading}", "", f"`{cls.__module__}.{cls.__name__}`, read by {readers}.", ""]
        if cls is TestSettings:
            out += [
                "Each of these weakens or breaks a service on purpose, for one test. They live",
                "in their own class so no production settings class carries them.",
                "",
            ]
        out += [
            "| variable | type | default | limits | what it does |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in own_settings(cls):
            description = s.description.replace("|", "\\|")
            out.append(f"| `{s.variable}` | {s.type} | {s.default} | {s.limits} | {description} |")
        out.append("")
    out += [
        "## chat-admin and chat-bench",
        "",
        "`chat-admin` reads the common settings above (it talks to the same broker and",
        "database). `chat-bench` takes command-line options (`chat-bench --help`); its",
        "`--amqp-url` and `--mongo-url` default to `AMQP_URL` and `MONGO_URL`.",
        "",
    ]
    return "\n".join(out)


def render_env_example() -> str:
    out = [
        "# Every setting the services read, with its default (generated by",
        "# scripts/config_reference.py; see docs/configuration.md). Copy to .env and uncomment",
        "# what you change. Test hooks are left out on purpose.",
    ]
    for heading, cls, _readers in SECTIONS:
        out += ["", f"# --- {heading} " + "-" * max(3, 80 - len(heading) - 7)]
        for s in own_settings(cls):
            out += textwrap.wrap(s.description, 96, initial_indent="# ", subsequent_indent="# ")
            if s.default.startswith("`"):
                out.append(f"# {s.variable}={s.default.strip('`')}")
            elif s.default in ("unset", "(required)", "true", "false", "empty"):
                value = "" if s.default in ("unset", "(required)", "empty") else s.default
                out.append(f"# {s.variable}={value}")
            else:
                out += [f"# default: {s.default}", f"# {s.variable}="]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in ((DOC, render_doc()), (ENV_EXAMPLE, render_env_example())):
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(path.relative_to(REPO).as_posix())
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(
            f"stale: {', '.join(stale)}; run `uv run --no-sync python scripts/config_reference.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
