"""ADMIN_PORT: /metrics, /stats and the API docs move off the service's public port to an
internal listener of their own; the service itself answers as before."""

import signal

import httpx
import pytest

from chat_core.internal import INTERNAL_PATHS
from tests.support.stack import ServiceProcess, Stack, free_port

pytestmark = pytest.mark.e2e

# What each service's internal listener must serve, beyond /metrics.
OWN_INTERNAL = {
    "ws-edge": ("/stats",),
    "messaging": ("/openapi.json", "/docs", "/redoc"),
    "presence": ("/openapi.json", "/docs"),
}


@pytest.mark.parametrize("name", list(OWN_INTERNAL))
async def test_internal_paths_are_only_on_the_admin_port(stack: Stack, name: str) -> None:
    admin_port = free_port()
    service = stack.start(name, ADMIN_PORT=str(admin_port), EDGE_ID=f"admin-{admin_port}")
    try:
        admin_url = f"http://127.0.0.1:{admin_port}"
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            assert (await http.get(f"{service.http_url}/readyz")).status_code == 200
            for path in INTERNAL_PATHS:
                public = await http.get(f"{service.http_url}{path}")
                assert public.status_code == 404, (name, path, public.status_code)
            for path in ("/metrics", *OWN_INTERNAL[name]):
                internal = await http.get(f"{admin_url}{path}")
                assert internal.status_code == 200, (name, path, internal.status_code)
            metrics = (await http.get(f"{admin_url}/metrics")).text
            assert "process_cpu_seconds_total" in metrics
            if name == "ws-edge":
                stats = (await http.get(f"{admin_url}/stats")).json()
                assert stats["edgeId"] == f"admin-{admin_port}"
            else:
                document = (await http.get(f"{admin_url}/openapi.json")).json()
                assert document["paths"], "the service's own API, not the admin app's"
                assert "/metrics" not in document["paths"]
    finally:
        service.stop(signal.SIGTERM)
    # Both listeners closed with the one signal, cleanly: uvicorn re-raises a SIGTERM it
    # handled once it is done (-15), except on the edge, whose drain takes the signal over.
    assert service.process.returncode in (0, -signal.SIGTERM), service.log_tail()
    assert "Traceback" not in service.log_text()
    assert service.log_text().count('"Application shutdown complete."') == 1


async def test_without_admin_port_they_stay_on_the_service_port(
    edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        for url in (
            f"{edge.http_url}/metrics",
            f"{edge.http_url}/stats",
            f"{messaging.http_url}/metrics",
            f"{messaging.http_url}/openapi.json",
            f"{messaging.http_url}/docs",
        ):
            assert (await http.get(url)).status_code == 200, url
