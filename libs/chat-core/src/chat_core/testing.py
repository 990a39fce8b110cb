"""Switches that only tests set, apart from the production settings on purpose.

Each one weakens a service or breaks it deliberately. They are read from the environment like
every setting, but no production settings class carries them, docs/configuration.md lists
them under their own heading, and a service that finds one set logs a warning.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TestSettings(BaseSettings):
    __test__ = False  # a settings class, not a pytest test class

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    firebase_cert_url: str | None = Field(
        default=None,
        description=(
            "Where Firebase's token-signing certificates are fetched from instead of Google's "
            "URL: tests serve their own (as firebase-admin's own tests do)."
        ),
    )
    fault_crash_after_write: bool = Field(
        default=False,
        description=(
            "messaging exits (status 70) right after a message is written and before its "
            "new_message is published: the outbox crash test."
        ),
    )
    fault_crash_after_claim: bool = Field(
        default=False,
        description=(
            "messaging exits (status 70) right after a message took its seq, before any other "
            "write."
        ),
    )
