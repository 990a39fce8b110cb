"""Settings shared by every service; each service extends `ServiceSettings`."""

import os
import socket
from enum import StrEnum
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthMode(StrEnum):
    DEV = "dev"
    FIREBASE = "firebase"


def default_edge_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "chat"
    # Every exchange and queue name starts with this, so test runs and stacks never share state.
    broker_prefix: str = "chat"
    broker_prefetch: int = Field(default=64, ge=1, le=10_000)

    auth_mode: AuthMode = AuthMode.DEV
    firebase_project_id: str | None = None
    firebase_credentials_file: str | None = None
    # Only for tests: where the signing certificates are fetched from instead of Google.
    firebase_cert_url: str | None = None
    firebase_clock_skew_seconds: int = Field(default=10, ge=0, le=60)
    # Set by the Firebase emulator tooling; firebase-admin then skips signature checks.
    firebase_auth_emulator_host: str | None = None

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    host: str = "127.0.0.1"
