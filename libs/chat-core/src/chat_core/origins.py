"""Which browser origins may open a WebSocket or call the REST APIs (ALLOWED_ORIGINS).

Only browsers send `Origin`; a request without one (a mobile app, a server) is not a
cross-site request and is always allowed. Unset, the list is `*` in dev auth mode and empty in
firebase mode, so a production deployment admits no third-party page until configured.
"""

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from chat_core.settings import AuthMode, ServiceSettings

ANY = "*"
CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["Retry-After"]
# Browsers cache a preflight this long (seconds), sparing one OPTIONS per request.
CORS_MAX_AGE = 600


def _normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    def __init__(self, allowed: list[str]) -> None:
        self.any = ANY in allowed
        self.allowed = frozenset(_normalise(o) for o in allowed if o != ANY)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "OriginPolicy":
        if settings.allowed_origins is not None:
            return cls(settings.allowed_origins)
        return cls([ANY] if settings.auth_mode is AuthMode.DEV else [])

    def allows(self, origin: str | None) -> bool:
        return origin is None or self.any or _normalise(origin) in self.allowed

    def cors_origins(self) -> list[str]:
        return [ANY] if self.any else sorted(self.allowed)


def add_cors(app: FastAPI, settings: ServiceSettings) -> None:
    """Answer CORS (preflight included) for the allowed origins. Add it last, so it is the
    outermost middleware and a 413 or 429 still carries the headers a page needs to read it."""
    policy = OriginPolicy.from_settings(settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=policy.cors_origins(),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_ALLOWED_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=CORS_MAX_AGE,
    )
