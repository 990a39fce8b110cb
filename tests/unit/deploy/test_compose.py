"""docker-compose.yml against the Compose Specification's JSON schema, and the promises made
about it: every service scales, the load balancer finds and health-checks the instances.

The schema is the one check-jsonschema vendors (`vendor.compose-spec`, from the compose-spec
project through SchemaStore), so it is updated with that package, not copied by hand.
"""

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from chat_core.internal import haproxy_deny_rule

REPO = Path(__file__).resolve().parents[3]
SCALED = {"ws-edge": 8000, "messaging": 8001, "presence": 8002}


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(REPO / "docker-compose.yml")
    return document


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_the_schema_check_can_fail(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "lb": {"image": 3, "portz": []}}}
    schema = compose_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_scaled_services_have_no_fixed_name_port_or_edge_id(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, port in SCALED.items():
        service = services[name]
        assert "ports" not in service, f"{name}: a published port stops --scale"
        assert "container_name" not in service, name
        assert "EDGE_ID" not in service.get("environment", {}), name
        assert str(port) in service["expose"], name
        assert "TRUSTED_PROXIES" in service["environment"], name
        assert f":{port}/readyz" in " ".join(service["healthcheck"]["test"]), name


def test_load_balancer_routes_to_every_ready_instance(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    assert lb["image"].startswith("haproxy:")
    published = {mapping.rsplit(":", 1)[-1] for mapping in lb["ports"]}
    assert {"8000", "8001", "8002"} <= published
    mount = next(v for v in lb["volumes"] if v.endswith("haproxy.cfg:ro"))
    config = (REPO / mount.split(":")[0]).read_text()
    trusted = compose["services"]["ws-edge"]["environment"]["TRUSTED_PROXIES"]
    assert lb["networks"]["chat"]["ipv4_address"] in trusted
    assert re.search(r"^\s*option forwardfor", config, re.M)
    tunnel = re.search(r"^\s*timeout tunnel\s+\d+[hm]", config, re.M)
    assert tunnel, "WebSockets need a long tunnel timeout"
    assert "nameserver dns 127.0.0.11:53" in config, "instances come from Docker's DNS"
    for name, port in SCALED.items():
        backend = re.split(rf"^backend {name}$", config, flags=re.M)[1].split("\nbackend ")[0]
        assert "option httpchk GET /readyz" in backend, name
        assert re.search(rf"server-template \S+ \d+ {name}:{port} check", backend), name


def test_files_the_compose_file_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source}"
    prometheus = load_yaml(REPO / "deploy/prometheus.yml")
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert set(SCALED) <= jobs


def test_internal_endpoints_are_scraped_on_the_admin_port_and_refused_publicly(
    compose: dict[str, Any],
) -> None:
    admin_port = int(compose["services"]["ws-edge"]["environment"]["ADMIN_PORT"])
    assert admin_port not in SCALED.values()
    prometheus = load_yaml(REPO / "deploy/prometheus.yml")
    for job in prometheus["scrape_configs"]:
        if job["job_name"] in SCALED:
            assert [sd["port"] for sd in job["dns_sd_configs"]] == [admin_port], job["job_name"]
    published = {
        m.rsplit(":", 1)[-1] for s in compose["services"].values() for m in s.get("ports", [])
    }
    assert str(admin_port) not in published
    config = (REPO / "deploy/haproxy.cfg").read_text()
    for name in ("edge", "messaging", "presence"):
        frontend = re.split(rf"^frontend {name}$", config, flags=re.M)[1].split("\nfrontend ")[0]
        assert haproxy_deny_rule() in frontend, name


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed here")
def test_haproxy_accepts_its_configuration() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(REPO / "deploy/haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_does_not_default_to_dev_auth(compose: dict[str, Any]) -> None:
    for name in SCALED:
        environment = compose["services"][name]["environment"]
        assert environment["AUTH_MODE"] == "${AUTH_MODE:-firebase}", name
        assert environment["ALLOW_DEV_AUTH_ON_NETWORK"] == "${ALLOW_DEV_AUTH_ON_NETWORK:-false}"


def test_settings_from_dot_env_reach_every_service_and_the_migration(
    compose: dict[str, Any],
) -> None:
    for name in (*SCALED, "migrate"):
        service = compose["services"][name]
        assert {"path": ".env", "required": False} in service["env_file"], name
        # Inside the network these are compose's to say, whatever .env holds.
        for forced in ("AMQP_URL", "AMQP_URLS", "MONGO_URL", "HOST", "ADMIN_PORT"):
            assert forced in service["environment"], (name, forced)


def test_the_migration_runs_once_before_the_services(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["chat-admin", "migrate"]
    assert migrate["restart"] == "no"
    for name in SCALED:
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name


def test_the_web_client_is_served_and_allowed(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    assert web["build"]["target"] == "web"
    assert "FROM ${PYTHON_IMAGE} AS web" in (REPO / "Dockerfile").read_text()
    assert any(mapping.endswith(":8080") for mapping in web["ports"])
    assert "--messaging-url=http://lb:8001" in web["command"]
    origins = compose["services"]["ws-edge"]["environment"]["ALLOWED_ORIGINS"]
    assert "http://localhost:8080" in origins


def test_rabbitmq_credentials_match_what_the_services_and_docs_use(
    compose: dict[str, Any],
) -> None:
    rabbit = compose["services"]["rabbitmq"]["environment"]
    user, password = rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"]
    assert (user, password) == ("${RABBITMQ_USER:-chat}", "${RABBITMQ_PASSWORD:-chat}")
    amqp = compose["services"]["ws-edge"]["environment"]["AMQP_URL"]
    assert amqp.startswith(f"amqp://{user}:{password}@rabbitmq:5672/")
    # The documented way to run the services here against compose's RabbitMQ.
    infrastructure = (REPO / "docs/infrastructure.md").read_text()
    assert "AMQP_URL=amqp://chat:chat@127.0.0.1:5672/ make run" in infrastructure
