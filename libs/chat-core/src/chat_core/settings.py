"""Settings shared by every service; each service extends `ServiceSettings`."""

import json
import os
import socket
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr
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

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="RabbitMQ (AMQP 0-9-1) URL, credentials included; a secret.",
    )
    amqp_urls: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Comma-separated URLs of a cluster's nodes; when set, used instead of `AMQP_URL`. "
            "A service connects to any live node and moves to another when its node goes away."
        ),
    )
    broker_queue_type: Literal["classic", "quorum"] = Field(
        default="classic",
        description=(
            "quorum: every durable queue replicated across the cluster (set it on a cluster); "
            "classic: one node's queues, faster there (docs/scaling.md has the figures). A "
            "queue's type is fixed when it is created: change BROKER_PREFIX along with it."
        ),
    )
    broker_partitions: int = Field(
        default=0,
        ge=0,
        le=32,
        description=(
            "0: presence and the messaging worker read one shared queue each (run one "
            "instance of each). N: N single-active-consumer partitions each, so any number of "
            "instances run with one writer per user (docs/scaling.md). Every service of a "
            "stack needs the same N."
        ),
    )
    broker_reconnect_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Pause between attempts to reach a broker node again after losing it.",
    )
    account_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description=(
            "How long a process trusts an account flag (disabled or not) it has read. A change "
            "by `chat-admin users disable|enable` reaches every process over the broker at "
            "once; this bounds it for a process that missed the announcement (its broker link "
            "was down)."
        ),
    )
    mongo_url: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27017/"),
        description="MongoDB URL (MongoDB 7, or FerretDB in development); a secret.",
    )
    mongo_db: str = Field(
        default="chat", description="The database every service of one stack shares."
    )
    mongo_max_pool_size: int = Field(
        default=32,
        ge=1,
        le=1000,
        description=(
            "Database connections one process opens at most, so commands in flight at once; "
            "more wait their turn in the process. Hot writes are batched anyway (group "
            "commit), so a few carry the load, and a bound keeps a burst from swamping the "
            "server."
        ),
    )
    broker_prefix: str = Field(
        default="chat",
        description=(
            "Every exchange and queue name starts with this, so test runs and stacks never "
            "share state."
        ),
    )
    broker_prefetch: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Unacknowledged messages each consumer holds at once.",
    )
    broker_delivery_shards: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description=(
            "Deliveries are routed by shard of the recipient (crc32 of the user id mod this), "
            "and an edge binds the shards of the users it holds: more shards, fewer deliveries "
            "an edge receives for users it does not hold; fewer, fewer binding changes "
            "(docs/scaling.md). Every service of a stack needs the same value; change "
            "BROKER_PREFIX along with it."
        ),
    )
    broker_publish_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "A publish the broker has not taken (and, where confirmed, confirmed) within this "
            "long fails like a refused one: a broker under a memory or disk alarm blocks "
            "publishers instead of refusing them, and a send must not hang on it."
        ),
    )

    auth_mode: AuthMode = Field(
        default=AuthMode.DEV,
        description=(
            "dev: the token is the user's +84 mobile number, so it serves loopback only (see "
            "ALLOW_DEV_AUTH_ON_NETWORK). firebase: a Firebase ID token, verified (signature, "
            "audience, issuer, expiry); the user id is its uid."
        ),
    )
    allow_dev_auth_on_network: bool = Field(
        default=False,
        description=(
            "Dev auth lets anyone sign in as any phone number, so a service in AUTH_MODE=dev "
            "refuses to listen on anything but loopback; true lets it (a demo on a closed "
            "network, compose's quick start), never in production."
        ),
    )
    firebase_project_id: str | None = Field(
        default=None,
        description=(
            "The Firebase project whose ID tokens are accepted (their `aud`); required in "
            "firebase mode."
        ),
    )
    firebase_credentials_file: str | None = Field(
        default=None,
        description=(
            "A service-account JSON file (mount it as a secret); optional, verifying ID "
            "tokens needs only the project id."
        ),
    )
    firebase_clock_skew_seconds: int = Field(
        default=10,
        ge=0,
        le=60,
        description="Tolerance for clock differences when checking a token's iat/exp.",
    )
    firebase_auth_emulator_host: str | None = Field(
        default=None,
        description=(
            "Set by the Firebase emulator tooling; firebase-admin then skips signature checks, "
            "so a service in firebase mode refuses to start while it is set (a guard, not a "
            "switch)."
        ),
    )

    log_level: str = Field(
        default="INFO",
        description=(
            "DEBUG, INFO, WARNING, ERROR or CRITICAL. Phone numbers are masked below WARNING."
        ),
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description=(
            "auto: one JSON object per line when stderr is not a terminal, coloured text when "
            "it is."
        ),
    )

    host: str = Field(
        default="127.0.0.1",
        description="Interface to listen on when --host is not given (the image sets 0.0.0.0).",
    )
    admin_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Unset: /metrics, /stats, /docs, /redoc and /openapi.json are on the service's own "
            "port. Set: they move to a listener on this port, which the load balancer never "
            "reaches, and the service's port answers them 404 (chat_core.internal)."
        ),
    )
    admin_host: str | None = Field(
        default=None,
        description="Interface of the ADMIN_PORT listener; unset: the service's own (HOST).",
    )

    allowed_origins: ListSetting | None = Field(
        default=None,
        description=(
            "Browser origins allowed to open a WebSocket or call the REST APIs (CORS); `*` is "
            "any. Unset: any origin in dev auth mode, none in firebase mode "
            "(chat_core.origins)."
        ),
    )
    trusted_proxies: ListSetting = Field(
        default_factory=list,
        description=(
            "Proxies (addresses or networks) whose X-Forwarded-For is believed; nobody's by "
            "default."
        ),
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Request bodies above this are refused with 413 on the REST APIs.",
    )

    @property
    def broker_urls(self) -> list[str]:
        listed = self.amqp_urls.get_secret_value().split(",")
        urls = [url.strip() for url in listed if url.strip()]
        return urls or [self.amqp_url.get_secret_value()]
