"""Cluster settings and routing that need no broker: node URLs, slots, HAProxy's config."""

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from chat_core.broker import MESSAGING, PRESENCE, SLOTS, TYPING, Topology, keyed_by_slot, slot_of
from chat_core.clock import utcnow
from chat_core.events import ConnectionOpened, EdgeAlive
from chat_core.internal import haproxy_deny_rule
from chat_core.settings import ServiceSettings

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def test_amqp_urls_win_over_amqp_url_and_blanks_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setenv("AMQP_URLS", " amqp://a:1/ , ,amqp://b:2/")
    assert ServiceSettings().broker_urls == ["amqp://a:1/", "amqp://b:2/"]
    monkeypatch.setenv("AMQP_URLS", "")
    assert ServiceSettings().broker_urls == ["amqp://guest:guest@127.0.0.1:5672/"]


def test_events_about_a_user_carry_the_users_slot_and_others_do_not() -> None:
    opened = ConnectionOpened(user_id="+84912345678", connection_id="c", edge_id="e", at=utcnow())
    alive = EdgeAlive(edge_id="e", at=utcnow(), connections=0)
    assert keyed_by_slot(opened, "conn.opened") == f"conn.opened.{slot_of('+84912345678')}"
    assert keyed_by_slot(alive, "edge.alive") == "edge.alive"
    assert 0 <= slot_of("+84912345678") < SLOTS


def test_only_stateful_consumers_are_partitioned() -> None:
    topology = Topology("p", partitions=3)
    assert topology.queues_of(PRESENCE) == ["p.presence.p0", "p.presence.p1", "p.presence.p2"]
    assert len(topology.queues_of(MESSAGING)) == 3
    assert topology.queues_of(TYPING) == ["p.typing"]
    assert Topology("p").queues_of(PRESENCE) == ["p.presence"]


def _script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_haproxy_checks_readyz_passes_the_client_address_and_keeps_websockets_open() -> None:
    config: str = _script("run_cluster").haproxy_config()  # type: ignore[attr-defined]
    assert "option forwardfor" in config
    assert "timeout tunnel 1h" in config
    assert config.count("option httpchk GET /readyz") == 3
    for port in (8010, 8011, 8021, 8022, 8031, 8032):
        assert f"127.0.0.1:{port} check" in config
    for port in (8000, 8001, 8002):
        assert f"bind 127.0.0.1:{port}" in config


def test_cluster_nodes_get_their_own_names_ports_and_directories(tmp_path: Path) -> None:
    module = _script("rabbit_cluster")
    cluster = module.RabbitCluster(tmp_path)  # type: ignore[attr-defined]
    assert [n.name for n in cluster.nodes] == [f"rabbit-{i}@localhost" for i in (1, 2, 3)]
    assert cluster.urls == [f"amqp://guest:guest@127.0.0.1:{p}/" for p in (5681, 5682, 5683)]
    node = cluster.nodes[0]
    env = node.env()
    assert env["RABBITMQ_DIST_PORT"] == "25681"
    assert env["HOME"] == str(tmp_path / "home")  # its own cookie, not the dev node's
    assert env["RABBITMQ_MNESIA_BASE"].startswith(str(tmp_path))
    node.write_config()
    assert '{"127.0.0.1", 5681}' in (node.base / "rabbitmq.config").read_text()


def test_every_cluster_instance_keeps_its_internal_endpoints_on_an_admin_port(
    tmp_path: Path,
) -> None:
    module: Any = _script("run_cluster")
    children = module.build_children(None, tmp_path / "haproxy.cfg")
    admin = [arg for child in children for arg in child.command if arg.startswith("ADMIN_PORT=")]
    assert admin == [f"ADMIN_PORT={p}" for p in (9010, 9011, 9021, 9022, 9031, 9032)]
    assert module.haproxy_config().count(haproxy_deny_rule()) == 3
