"""Settings shared by every service; each service extends `ServiceSettings`."""

import json
import os
import socket
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AuthMode(StrEnum):
    DEV = "dev"
    FIREBASE = "firebase"


def _split_list(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# A list setting is written comma-separated in the environment (`a,b`), or as a JSON list.
ListSetting = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def default_edge_id() -> str:
    """<hostname>-<pid> (in a container: its id, and pid 1)"""
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # RabbitMQ (AMQP 0-9-1) URL, credentials included; a secret.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Comma-separated URLs of a cluster's nodes; when set, used instead of `amqp_url`. A
    # service connects to any live node and moves to another when its node goes away.
    amqp_urls: str = ""
    # quorum: every durable queue replicated across the cluster (set it on a cluster);
    # classic: one node's queues, faster there (docs/scaling.md has the figures). A queue's
    # type is fixed when it is created: change BROKER_PREFIX along with it.
    broker_queue_type: Literal["classic", "quorum"] = "classic"
    # 0: presence and the messaging worker read one shared queue each (run one instance of
    # each). N: N single-active-consumer partitions each, so any number of instances run
    # with one writer per user (docs/scaling.md). Every service of a stack needs the same N.
    broker_partitions: int = Field(default=0, ge=0, le=32)
    broker_reconnect_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Deliveries are routed by shard of the recipient (crc32 of the user id mod this), and an
    # edge binds the shards of the users it holds: more shards, fewer deliveries an edge
    # receives for users it does not hold; fewer, fewer binding changes (docs/scaling.md).
    # Every service of a stack needs the same value; change BROKER_PREFIX along with it.
    broker_delivery_shards: int = Field(default=1024, ge=1, le=1_048_576)
    # A publish the broker has not taken (and, where confirmed, confirmed) within this long
    # fails like a refused one: a broker under a memory or disk alarm blocks publishers
    # instead of refusing them, and a send must not hang on it.
    broker_publish_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # MongoDB URL (MongoDB 7, or FerretDB in development); a secret when it has credentials.
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    # The database every service of one stack shares.
    mongo_db: str = "chat"
    # Every exchange and queue name starts with this, so test runs and stacks never share state.
    broker_prefix: str = "chat"
    # Unacknowledged messages each consumer holds at once.
    broker_prefetch: int = Field(default=64, ge=1, le=10_000)

    # dev: the token is the user's +84 mobile number. firebase: a Firebase ID token, verified
    # (signature, audience, issuer, expiry); the user id is its uid.
    auth_mode: AuthMode = AuthMode.DEV
    # The Firebase project whose ID tokens are accepted (their `aud`); required in firebase mode.
    firebase_project_id: str | None = None
    # A service-account JSON file; optional, verifying ID tokens needs only the project id.
    firebase_credentials_file: str | None = None
    # Tolerance for clock differences when checking a token's iat/exp.
    firebase_clock_skew_seconds: int = Field(default=10, ge=0, le=60)
    # Set by the Firebase emulator tooling; firebase-admin then skips signature checks, so a
    # service in firebase mode refuses to start while it is set (a guard, not a switch).
    firebase_auth_emulator_host: str | None = None

    log_level: str = "INFO"
    # auto: one JSON object per line when stderr is not a terminal, coloured text when it is.
    log_format: Literal["auto", "json", "console"] = "auto"

    # Interface to listen on when --host is not given (the image sets 0.0.0.0).
    host: str = "127.0.0.1"

    # Browser origins allowed to open a WebSocket or call the REST APIs (CORS); `*` is any.
    # Unset: any origin in dev auth mode, none in firebase mode (see chat_core.origins).
    allowed_origins: ListSetting | None = None
    # Proxies (addresses or networks) whose X-Forwarded-For is believed; nobody's by default.
    trusted_proxies: ListSetting = Field(default_factory=list)
    # Request bodies above this are refused with 413 on the REST APIs.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    @property
    def broker_urls(self) -> list[str]:
        urls = [url.strip() for url in self.amqp_urls.split(",") if url.strip()]
        return urls or [self.amqp_url]
