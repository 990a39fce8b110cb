# syntax=docker/dockerfile:1
# One image for ws-edge, messaging, presence and chat-admin; docker-compose.yml picks the command
# per service. Built the way uv's Docker guide describes: a pinned uv binary, third-party
# dependencies in their own cached layer, the workspace installed --no-editable into a virtual
# environment that is the only thing the slim runtime stage takes.
#
#   docker build -t chat-backend .                     # the services
#   docker build --build-arg BENCH=yes -t chat-bench . # ... plus chat-bench (load generator)
#   docker build --target web -t chat-web .            # the browser client (compose's `web`)
#
# tests/integration/deploy/test_image.py replays the COPY and `uv sync` steps below with uv on
# exactly the files they copy, so a missing COPY fails `make test` even where no Docker engine runs.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG UV_VERSION=0.13.9
# yes: the image also carries chat-bench (for load tests from inside the network).
ARG BENCH=no

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /app

# Third-party dependencies first: this layer is rebuilt only when a pyproject or the lock
# changes. --frozen installs exactly uv.lock (make test checks the lock is current with
# `uv lock --check`) and needs only the members it installs, so a new workspace member
# (a client library, a tool) changes nothing here.
COPY pyproject.toml uv.lock ./
COPY libs/chat-core/pyproject.toml libs/chat-core/
COPY services/ws-edge/pyproject.toml services/ws-edge/
COPY services/messaging/pyproject.toml services/messaging/
COPY services/presence/pyproject.toml services/presence/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-workspace \
        --package ws-edge --package messaging --package presence

# Then the workspace packages themselves, as wheels (--no-editable): the runtime stage gets
# site-packages only, no source tree.
COPY libs/chat-core/ libs/chat-core/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package ws-edge --package messaging --package presence

FROM builder AS venv-no

FROM builder AS venv-yes
COPY libs/chat-launcher/ libs/chat-launcher/
COPY libs/chat-client/ libs/chat-client/
COPY bench/ bench/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package ws-edge --package messaging --package presence --package chat-bench

FROM venv-${BENCH} AS venv

# The browser client (clients/web), for compose's `web` service (`--target web`): built with
# Node (Vite 7 needs Node >= 20.19) and served by scripts/serve_web.py from the services'
# environment (Starlette, uvicorn and httpx are already in it). Not part of the default image.
FROM node:22-bookworm-slim AS web-build
WORKDIR /web
COPY clients/web/package.json clients/web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY clients/web/ ./
RUN npx --no-install vite build --logLevel warn

FROM ${PYTHON_IMAGE} AS web
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:$PATH"
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chat
WORKDIR /app
COPY --from=venv --chown=chat:chat /app/.venv /app/.venv
COPY --from=web-build --chown=chat:chat /web/dist /app/web
COPY --chown=chat:chat scripts/serve_web.py /app/serve_web.py
USER chat
EXPOSE 8080
CMD ["python", "/app/serve_web.py", "--host=0.0.0.0", "--port=8080", "--dist=/app/web"]

FROM ${PYTHON_IMAGE} AS runtime
# Firebase auth unless told otherwise: the image listens on every interface, and a service
# there refuses dev auth (the phone number as the credential) without
# ALLOW_DEV_AUTH_ON_NETWORK=true. Without FIREBASE_PROJECT_ID it does not start at all.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:$PATH" \
    AUTH_MODE=firebase \
    LOG_FORMAT=json \
    HOST=0.0.0.0
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chat
WORKDIR /app
COPY --from=venv --chown=chat:chat /app/.venv /app/.venv
USER chat

EXPOSE 8000 8001 8002
# A plain `docker stop` (SIGTERM, then SIGKILL after 10 s) gives the edge its drain period.
STOPSIGNAL SIGTERM
CMD ["ws-edge", "--port", "8000"]
