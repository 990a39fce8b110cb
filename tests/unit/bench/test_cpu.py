import os
import socket

from chat_bench.cpu import (
    GENERATOR,
    CpuMeter,
    cpu_seconds,
    per_operation,
    pid_listening_on,
    rss_kib,
)


def test_a_busy_window_is_charged_to_this_process() -> None:
    meter = CpuMeter({GENERATOR: os.getpid()})
    start = cpu_seconds(os.getpid())
    assert start is not None
    with meter.window() as window:
        # Spin until the kernel has charged at least a few clock ticks.
        while (cpu_seconds(os.getpid()) or 0) - start < 0.05:
            sum(range(10_000))
    assert window.spent[GENERATOR] > 0
    figures = window.per_operation(1000)
    assert figures["cpu_ms_per_op_generator"] == figures["cpu_ms_per_op_total"] > 0
    assert figures["cpu_ms_per_op_servers"] == 0


def test_servers_sum_every_process_but_the_generator() -> None:
    spent = {"ws-edge": 0.2, "messaging": 0.5, "database": 0.3, GENERATOR: 0.1}
    figures = per_operation(spent, 100)
    assert figures["cpu_ms_per_op_ws_edge"] == 2.0
    assert figures["cpu_ms_per_op_servers"] == 10.0
    assert figures["cpu_ms_per_op_total"] == 11.0


def test_the_process_on_a_listening_port_is_found() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert pid_listening_on(listener.getsockname()[1]) == os.getpid()


def test_gone_processes_and_no_operations_give_nothing() -> None:
    assert cpu_seconds(2**22 + 12345) is None
    assert rss_kib(2**22 + 12345) is None
    assert (rss_kib(os.getpid()) or 0) > 0
    assert per_operation({"x": 1.0}, 0) == {}
