"""The running stack: each service a real process on its own port, fresh names per session."""

from collections.abc import Iterator

import pytest

from tests.support.stack import ServiceProcess, Stack

# Short presence timings so expiry is observable in seconds; production defaults are in
# docs/presence.md.
FAST_PRESENCE = {
    "ANNOUNCE_INTERVAL_SECONDS": "0.5",
    "EDGE_TIMEOUT_SECONDS": "2",
    "SWEEP_INTERVAL_SECONDS": "0.5",
    "HEARTBEAT_FORWARD_INTERVAL_SECONDS": "0",
    # Nothing balances the test edges: a stopped edge need not wait for a load balancer.
    "DRAIN_SECONDS": "0.2",
}

# The suite is not a test of the abuse limits (tests/e2e/*/test_*limits.py are, with small
# values of their own): raised far above what any other test does, so none measures them.
RAISED_LIMITS = {
    "FRAME_RATE_PER_SECOND": "10000",
    "FRAME_BURST": "10000",
    "INVALID_FRAMES_MAX": "10000",
    "MAX_SOCKETS": "100000",
    "ADMISSIONS_PER_SECOND_PER_ADDRESS": "10000",
    "MAX_DEVICES_PER_USER": "1000",
    "SEND_RATE_PER_SECOND": "10000",
    "SEND_BURST": "10000",
    "CONVERSATION_RATE_PER_SECOND": "10000",
    "CONVERSATION_BURST": "10000",
    "READ_RATE_PER_SECOND": "10000",
    "READ_BURST": "10000",
}


@pytest.fixture(scope="session")
def stack(
    amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = Stack(
        amqp_url,
        mongo_url,
        tmp_path_factory.mktemp("logs"),
        extra_env={**FAST_PRESENCE, **RAISED_LIMITS},
    )
    yield running
    running.close()


@pytest.fixture(scope="session")
def edge(stack: Stack) -> ServiceProcess:
    return stack.start("ws-edge", EDGE_ID="edge-a")


@pytest.fixture(scope="session")
def messaging(stack: Stack) -> ServiceProcess:
    return stack.start("messaging")


@pytest.fixture(scope="session")
def presence(stack: Stack) -> ServiceProcess:
    return stack.start("presence")


@pytest.fixture
def second_edge(stack: Stack) -> Iterator[ServiceProcess]:
    """Another edge process beside the first, stopped after the test."""
    other = stack.start("ws-edge", EDGE_ID=f"edge-b-{stack.names[1][-6:]}")
    yield other
    other.stop()
