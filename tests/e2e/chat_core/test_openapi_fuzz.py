"""Schemathesis against the running REST services: no 5xx, every answer as documented.

Bounded and derandomised (the same examples every run), so `make test` stays fast and a
failure reproduces. The caller is a valid dev-mode user; generated ids mostly hit 404 and
generated bodies mostly 422, which is the point: those answers must be documented too.
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from tests.support.stack import ServiceProcess
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
BOUNDED = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CALLER = new_user()


def fuzz(service: ServiceProcess) -> list[str]:
    """Run every operation of the service's schema; the operations exercised."""
    schema = schemathesis.openapi.from_url(f"{service.http_url}/openapi.json")
    schema.config.update(base_url=service.http_url)
    exercised = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()

        @given(case=operation.as_strategy())
        @BOUNDED
        def run(case: Case[Any]) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {CALLER}"}, checks=CHECKS)

        run()
        exercised.append(operation.label)
    return exercised


@pytest.mark.timeout(300)
def test_messaging_api(messaging: ServiceProcess) -> None:
    exercised = fuzz(messaging)
    assert "POST /conversations/{conversation_id}/messages" in exercised
    print(f"schemathesis: {len(exercised)} messaging operations: {exercised}")


@pytest.mark.timeout(300)
def test_presence_api(presence: ServiceProcess) -> None:
    exercised = fuzz(presence)
    assert "GET /presence/{user_id}" in exercised
    print(f"schemathesis: {len(exercised)} presence operations: {exercised}")
