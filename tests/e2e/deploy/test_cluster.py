"""The stack on a real 3-node RabbitMQ cluster with quorum queues: faults cost nothing.

One cluster per session (starting three Erlang nodes takes ~35 s on two cores); the drill is
the short form of `chat-bench faults`.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chat_bench.faults import SHORT, ClusterStack, run_drill

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FAST_PRESENCE = {
    "ANNOUNCE_INTERVAL_SECONDS": "0.5",
    "EDGE_TIMEOUT_SECONDS": "2",
    "SWEEP_INTERVAL_SECONDS": "0.5",
    "HEARTBEAT_FORWARD_INTERVAL_SECONDS": "0",
    # Two presence and two messaging instances: each user's state has one writer.
    "BROKER_PARTITIONS": "4",
}


@pytest.fixture(scope="module")
def cluster_stack(
    mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterStack]:
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and not shutil.which("apt-get"):
        pytest.skip("needs Debian's rabbitmq-server (make infra installs it)")
    stack = ClusterStack.create(
        tmp_path_factory.mktemp("cluster"), mongo_url, extra_env=FAST_PRESENCE
    )
    stack.start_cluster()
    try:
        yield stack
    finally:
        stack.stop()


async def test_a_node_a_messaging_process_and_an_edge_die_and_nothing_is_lost(
    cluster_stack: ClusterStack,
) -> None:
    stack = cluster_stack
    stack.add("ws-edge", 2)
    stack.add("messaging", 2)
    stack.add("presence", 2)
    async with httpx.AsyncClient(trust_env=False) as http:
        await stack.wait_ready(http)
    figures = await run_drill(stack, SHORT)
    print("fault drill figures:", figures.as_dict())
    assert figures.accepted > 0
    assert figures.lost == 0
    assert figures.unseen_by_recipient == 0
    assert figures.duplicates == 0
    # Timing is reported, not asserted here: on this shared two-core machine a restarted
    # Python process, and /readyz itself (a database ping), take from 4 s to over 80 s
    # depending on other test suites' load, which would make `make test` flaky. Every
    # service did become ready again (wait_ready fails after 180 s); the < 30 s goal is
    # judged by `chat-bench faults` (docs/scaling.md has both figures).
    assert set(figures.ready_again_seconds) == {"rabbitmq_node", "messaging", "ws-edge"}
    assert figures.online_without_socket == 0
    # The edge on the lost node told its clients to resume; the killed edge's clients saw
    # their connections drop.
    assert figures.closes.get("1012", 0) > 0
