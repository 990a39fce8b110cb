"""What every REST API gets in front of its routes: the body cap (413) and CORS."""

from fastapi import FastAPI

from chat_core.body_limit import BodyLimit
from chat_core.origins import add_cors
from chat_core.settings import ServiceSettings


def guard_rest_api(app: FastAPI, settings: ServiceSettings) -> None:
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Last, so outermost: a 413 or 429 still carries the CORS headers a page needs.
    add_cors(app, settings)
