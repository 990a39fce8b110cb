"""What every command line of the project answers: --version, and a --help that names the
environment settings the program reads (docs/configuration.md has the full reference)."""

import argparse
from enum import Enum
from importlib.metadata import PackageNotFoundError, version

from pydantic import SecretStr
from pydantic_settings import BaseSettings


def version_text(prog: str, distribution: str) -> str:
    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    text = f"{prog} {of(distribution)}"
    return text if distribution == "chat-core" else f"{text} (chat-core {of('chat-core')})"


def settings_help(settings: type[BaseSettings]) -> str:
    lines = ["environment settings (or a .env file; see docs/configuration.md):"]
    for name, field in settings.model_fields.items():
        default = field.get_default(call_default_factory=False)
        if isinstance(default, Enum):
            default = default.value
        shown = "unset" if default is None else str(default)
        if field.default_factory is not None:
            shown = "computed"
        elif isinstance(default, SecretStr):
            value = default.get_secret_value()
            shown = "(a URL with credentials)" if "@" in value else value or "unset"
        lines.append(f"  {name.upper():<38} default {shown}")
    return "\n".join(lines)


def parser(
    prog: str,
    description: str | None,
    settings: type[BaseSettings],
    *,
    distribution: str | None = None,
    examples: str = "",
) -> argparse.ArgumentParser:
    """`distribution`: the package whose version --version prints (default: `prog`)."""
    epilog = f"{examples.rstrip()}\n\n" if examples else ""
    command_line = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog + settings_help(settings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command_line.add_argument(
        "--version", action="version", version=version_text(prog, distribution or prog)
    )
    return command_line
