"""The pure parts of `chat-bench compare`: Centrifugo's config and tokens, its JSON framing,
and the side-by-side table."""

import os

import jwt
import pytest

from chat_bench.centrifugo import (
    RESERVED_PORTS,
    CentrifugoConfig,
    free_unreserved_port,
    split_messages,
)
from chat_bench.compare import (
    DASH,
    SMOKE,
    CompareOptions,
    Row,
    cell,
    comparison_table,
    cpu_figures,
    kib_per_socket,
    options_from,
    parser,
    ratio,
    ratio_cell,
    rows_for,
    rss_kib,
)
from chat_bench.cpu import CpuMeter

SECRET = "a-test-secret-of-at-least-32-bytes!"
CONFIG = CentrifugoConfig(port=40123, token_secret=SECRET, api_key="k3y")


def test_the_config_subscribes_each_user_to_a_personal_channel_in_a_namespace_it_defines() -> None:
    document = CONFIG.document()
    personal = document["client"]["subscribe_to_user_personal_channel"]
    assert personal == {"enabled": True, "personal_channel_namespace": "personal"}
    # Centrifugo refuses to start when the personal namespace is not defined.
    names = [n["name"] for n in document["channel"]["namespaces"]]
    assert names == ["personal"]
    assert document["client"]["token"] == {"hmac_secret_key": SECRET}
    assert document["http_api"] == {"key": "k3y"}
    assert document["http_server"] == {"address": "127.0.0.1", "port": 40123}
    assert document["usage_stats"] == {"disabled": True}
    assert document["health"] == {"enabled": True}


def test_generated_configs_have_fresh_secrets() -> None:
    first, second = CentrifugoConfig.generate(1234), CentrifugoConfig.generate(1234)
    assert first.token_secret != second.token_secret
    assert first.api_key != second.api_key
    assert len(first.token_secret) >= 32


def test_personal_channel_and_urls() -> None:
    assert CONFIG.personal_channel("+84312345678") == "personal:#+84312345678"
    assert CONFIG.websocket_url == "ws://127.0.0.1:40123/connection/websocket"
    assert CONFIG.http_url == "http://127.0.0.1:40123"


def test_the_connection_token_is_an_hs256_jwt_for_the_user() -> None:
    token = CONFIG.connection_token("+84312345678", now=1_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["sub"] == "+84312345678"
    assert claims["iat"] == 1_000_000
    assert claims["exp"] > claims["iat"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            "another-secret-of-at-least-32-bytes",
            algorithms=["HS256"],
            options={"verify_exp": False},
        )


def test_a_fresh_token_is_valid_now() -> None:
    claims = jwt.decode(CONFIG.connection_token("u1"), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1"


def test_one_frame_may_carry_several_messages_and_pings_are_empty() -> None:
    frame = '{"id":1,"connect":{"client":"c"}}\n{}\n{"push":{"channel":"personal:#u"}}\n'
    assert split_messages(frame) == [
        {"id": 1, "connect": {"client": "c"}},
        {},
        {"push": {"channel": "personal:#u"}},
    ]
    assert split_messages(b"{}") == [{}]


def test_ratios_are_ours_over_centrifugo() -> None:
    assert ratio(23.5, 33.9) == 0.69
    assert ratio(617, 2214) == 0.28
    assert ratio(3.8, 1.0) == 3.8
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0) is None
    assert ratio(True, 1.0) is None


def test_ratio_cells() -> None:
    assert ratio_cell(None) == DASH
    assert ratio_cell(0.0812) == "0.08"
    assert ratio_cell(1032.21) == "1,032"


def test_cells() -> None:
    assert cell(None) == DASH
    assert cell("x") == DASH
    assert cell(2214.4) == "2,214"
    assert cell(23.46) == "23.5"
    assert cell(3.812) == "3.81"


def test_the_table_puts_both_stacks_side_by_side_with_ratios() -> None:
    rows = [Row("memory", "rss_per_socket_kib"), Row("heartbeat", "hb_p99_ms", ours_only=True)]
    ours = {"rss_per_socket_kib": 23.5, "hb_p99_ms": 554.0}
    theirs = {"rss_per_socket_kib": 33.9, "hb_p99_ms": 1.0}
    lines = comparison_table(rows, ours, theirs).splitlines()
    assert lines[0].split() == ["figure", "ours", "Centrifugo", "ours/Centrifugo"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["memory", "23.5", "33.9", "0.69"]
    # An ours-only figure shows no Centrifugo value even if one were given, and no ratio.
    assert lines[3].split() == ["heartbeat", "554", DASH, DASH]


def test_the_rows_name_the_sizes() -> None:
    labels = [row.label for row in rows_for(CompareOptions())]
    assert "memory per idle socket, KiB (5,000 held)" in labels
    assert any("(200/s)" in label for label in labels)
    assert "sends per second achieved (offered 200)" in labels
    assert [row.figure for row in rows_for(SMOKE) if row.ours_only] == [
        "heartbeat_ack_while_connecting_p99_ms"
    ]


def test_cpu_per_operation_sums_the_server_processes_apart_from_the_load_generator() -> None:
    meter = CpuMeter(spent={"ws-edge": 1.0, "broker": 0.5, "load generator": 2.0})
    figures = cpu_figures(meter, "send", 1000)
    assert figures["cpu_ms_per_send_ws_edge"] == 1.0
    assert figures["cpu_ms_per_send_load_generator"] == 2.0
    assert figures["cpu_ms_per_send_server"] == 1.5
    assert figures["cpu_ms_per_send_total"] == 3.5
    assert cpu_figures(meter, "send", 0) == {}


def test_memory_per_socket() -> None:
    assert kib_per_socket(100_000, 217_500, 5000) == 23.5
    assert kib_per_socket(None, 1, 1) is None
    assert kib_per_socket(1, 2, 0) is None
    own = rss_kib(os.getpid())
    assert own is not None
    assert own > 1000
    assert rss_kib(2**22 + 12345) is None


def test_smoke_sizes_with_an_override() -> None:
    options = options_from(parser().parse_args(["--smoke", "--rate", "50"]))
    assert options == CompareOptions(**{**SMOKE.__dict__, "rate": 50.0})
    assert options_from(parser().parse_args([])) == CompareOptions()
    full = options_from(parser().parse_args(["--sockets", "100", "--duration", "3"]))
    assert (full.sockets, full.duration, full.rate) == (100, 3.0, 200.0)


def test_free_ports_avoid_the_reserved_ones() -> None:
    assert 8000 in RESERVED_PORTS
    assert 8080 in RESERVED_PORTS
    assert free_unreserved_port() not in RESERVED_PORTS
