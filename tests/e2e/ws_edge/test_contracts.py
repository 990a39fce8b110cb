"""The machine-readable contracts the running services publish."""

import httpx
import pytest

from chat_core import asyncapi
from tests.support.stack import ServiceProcess

pytestmark = pytest.mark.e2e


async def test_edge_serves_the_asyncapi_document(edge: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=edge.http_url) as client:
        response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == asyncapi.document()
