"""Spec section 1: who may connect, and the close codes of those who may not."""

import asyncio

import httpx
import pytest

from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user


async def closed_with(url: str) -> tuple[int | None, str | None]:
    async with WsClient(url) as client:
        return await client.wait_closed()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?token=",
        "?token=hello",
        "?token=%2B15551234567",  # E.164, but not Vietnamese
        "?token=%2B842412345678",  # Vietnamese landline prefix
        "?token=%2B8491234567",  # one digit short
        "?token=84912345678",  # no plus at all
        "?other=%2B84912345678",
    ],
)
async def test_invalid_or_missing_token_closes_4001(edge: ServiceProcess, query: str) -> None:
    code, reason = await closed_with(f"{edge.ws_url}/ws/%2B84912345678{query}")
    assert code == 4001
    assert reason


async def test_token_for_another_user_closes_4002(edge: ServiceProcess) -> None:
    user, other = new_user(), new_user()
    code, reason = await closed_with(f"{edge.ws_url}/ws/{user}?token={other}")
    assert (code, reason) == (4002, "token user does not match path user")


async def test_malformed_path_user_with_valid_token_closes_4002(edge: ServiceProcess) -> None:
    user = new_user()
    code, _ = await closed_with(f"{edge.ws_url}/ws/not-a-phone?token={user}")
    assert code == 4002


@pytest.mark.parametrize(
    ("path_form", "token_form"),
    [
        ("+", "+"),  # typed as in the spec's Postman guide: the query's + arrives as a space
        ("%2B", "%2B"),
        ("+", "%2B"),
        ("%2B", "+"),
    ],
)
async def test_raw_plus_and_percent_encoded_forms_are_accepted(
    edge: ServiceProcess, path_form: str, token_form: str
) -> None:
    digits = new_user()[1:]
    url = f"{edge.ws_url}/ws/{path_form}{digits}?token={token_form}{digits}"
    async with WsClient(url) as client:
        await client.heartbeat()


async def test_disabled_user_is_refused_with_4003_and_can_be_enabled_again(
    edge: ServiceProcess, stack: Stack
) -> None:
    user = new_user()
    assert stack.run_admin("users", "disable", user).returncode == 0
    async with WsClient.for_user(edge.ws_url, user) as client:
        assert await client.wait_closed() == (4003, "user account is disabled")

    assert stack.run_admin("users", "enable", user).returncode == 0
    async with WsClient.for_user(edge.ws_url, user) as client:
        await client.heartbeat()


async def test_disabling_closes_every_open_connection_with_4003(
    edge: ServiceProcess, second_edge: ServiceProcess, stack: Stack
) -> None:
    user, bystander = new_user(), new_user()
    async with (
        WsClient.for_user(edge.ws_url, user) as phone,
        WsClient.for_user(second_edge.ws_url, user) as laptop,
        WsClient.for_user(edge.ws_url, bystander) as other,
    ):
        await asyncio.gather(phone.heartbeat(), laptop.heartbeat(), other.heartbeat())

        result = stack.run_admin("users", "disable", user)

        assert result.returncode == 0, result.stderr
        assert '"disabled": true' in result.stdout
        assert (await phone.wait_closed())[0] == 4003
        assert (await laptop.wait_closed())[0] == 4003
        await other.heartbeat()


def test_admin_rejects_an_invalid_user_id(stack: Stack) -> None:
    result = stack.run_admin("users", "disable", "not-a-user")
    assert result.returncode != 0
    assert "not a valid user id" in result.stderr


def test_admin_show_reports_a_never_seen_user(stack: Stack) -> None:
    user = new_user()
    result = stack.run_admin("users", "show", user)
    assert result.returncode == 0, result.stderr
    assert f'"userId": "{user}"' in result.stdout
    assert '"disabled": false' in result.stdout


async def test_one_user_may_hold_several_connections(edge: ServiceProcess) -> None:
    user = new_user()
    async with (
        WsClient.for_user(edge.ws_url, user) as first,
        WsClient.for_user(edge.ws_url, user) as second,
    ):
        await first.heartbeat()
        await second.heartbeat()
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{edge.http_url}/stats")).json()
        assert stats["connections"] >= 2


def test_health_and_readiness(edge: ServiceProcess) -> None:
    assert httpx.get(f"{edge.http_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{edge.http_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "broker": True,
        "database": True,
        "delivery_queue": True,
        "accepting": True,
    }
