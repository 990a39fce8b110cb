"""Where the tests find a real RabbitMQ and a real MongoDB-compatible server.

With a Docker engine, each context manager starts a throwaway container through testcontainers
(RabbitMQ 3.13, MongoDB 7) and yields its URL. Without one (these machines), it yields the
local servers that `make infra` starts: `AMQP_URL` / `MONGO_URL` from the environment, with the
same defaults as the services, after checking that the port answers.

`CHAT_TEST_INFRA=local` forces the local servers even where Docker works, and
`CHAT_TEST_INFRA=docker` insists on containers.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017/"
RABBITMQ_IMAGE = "rabbitmq:3.13-management"
MONGO_IMAGE = "mongo:7"
DOCKER_PROBE_TIMEOUT = 5.0


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers `docker info` within a few seconds."""
    mode = os.environ.get("CHAT_TEST_INFRA", "auto").lower()
    if mode == "local":
        return False
    docker = shutil.which("docker")
    ok = False
    if docker is not None:
        try:
            result = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=DOCKER_PROBE_TIMEOUT,
                check=False,
            )
            ok = result.returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
    if mode == "docker" and not ok:
        raise RuntimeError("CHAT_TEST_INFRA=docker, but no Docker engine answers `docker info`")
    return ok


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of the first host in an amqp:// or mongodb:// URL."""
    rest = url.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    first = hosts.split(",", 1)[0]
    if first.startswith("["):
        host, _, tail = first[1:].partition("]")
        port = tail.lstrip(":")
    else:
        host, _, port = first.partition(":")
    return host or "127.0.0.1", int(port) if port else default_port


def _require_answering(what: str, env_name: str, url: str, default_port: int) -> None:
    host, port = _host_port(url, default_port)
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        raise RuntimeError(
            f"{what} does not answer at {host}:{port} ({env_name}={_redact(url)}): {exc}. "
            "Without Docker the tests use the local servers: run `make infra`"
        ) from exc


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, tail = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


@contextmanager
def _library_warnings_ignored() -> Iterator[None]:
    """testcontainers warns about its own deprecations (old module paths, its wait decorators)
    on import and start; the suite turns warnings into errors, so keep those out of it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        yield


def _testcontainers_class(module: str, name: str) -> Any:
    """Newer testcontainers releases keep these under testcontainers.community.*."""
    with _library_warnings_ignored():
        try:
            found = importlib.import_module(f"testcontainers.community.{module}")
        except ModuleNotFoundError:
            found = importlib.import_module(f"testcontainers.{module}")
    return getattr(found, name)


@contextmanager
def broker_url() -> Iterator[str]:
    """An AMQP URL of a running RabbitMQ."""
    if not docker_available():
        url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
        scheme_port = 5671 if url.startswith("amqps://") else 5672
        _require_answering("RabbitMQ", "AMQP_URL", url, scheme_port)
        yield url
        return
    container_class = _testcontainers_class("rabbitmq", "RabbitMqContainer")
    with _library_warnings_ignored():
        container = container_class(RABBITMQ_IMAGE, username="guest", password="guest")
        container.start()
    try:
        with _library_warnings_ignored():
            host = str(container.get_container_host_ip())
            port = int(container.get_exposed_port(5672))
        yield f"amqp://guest:guest@{host}:{port}/"
    finally:
        with _library_warnings_ignored():
            container.stop()


@contextmanager
def mongo_url() -> Iterator[str]:
    """A mongodb:// URL of a running MongoDB-compatible server."""
    if not docker_available():
        url = os.environ.get("MONGO_URL", DEFAULT_MONGO_URL)
        if not url.startswith("mongodb+srv://"):
            _require_answering("MongoDB", "MONGO_URL", url, 27017)
        yield url
        return
    container_class = _testcontainers_class("mongodb", "MongoDbContainer")
    with _library_warnings_ignored():
        container = container_class(MONGO_IMAGE)
        container.start()
    try:
        with _library_warnings_ignored():
            url = str(container.get_connection_url())
        yield url
    finally:
        with _library_warnings_ignored():
            container.stop()
