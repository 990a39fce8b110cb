# One image for ws-edge, messaging and presence (and chat-admin); docker-compose.yml picks the
# command per service. Build from the repository root: docker build -t chat-backend .
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv comes from PyPI like every other dependency.
RUN pip install --no-cache-dir uv

WORKDIR /app

# Third-party dependencies first: this layer is rebuilt only when a pyproject or the lock changes.
COPY pyproject.toml uv.lock ./
COPY libs/chat-core/pyproject.toml libs/chat-core/
COPY services/ws-edge/pyproject.toml services/ws-edge/
COPY services/messaging/pyproject.toml services/messaging/
COPY services/presence/pyproject.toml services/presence/
RUN uv sync --all-packages --frozen --no-dev --no-install-workspace

# Then the workspace packages themselves.
COPY libs/ libs/
COPY services/ services/
RUN uv sync --all-packages --frozen --no-dev

ENV PATH="/app/.venv/bin:$PATH" \
    AUTH_MODE=dev \
    LOG_FORMAT=json

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chat
USER chat

EXPOSE 8000 8001 8002
CMD ["ws-edge", "--host", "0.0.0.0", "--port", "8000"]
