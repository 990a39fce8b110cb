import os
import socket

from chat_bench.cpu import CpuMeter, cpu_seconds, pid_listening_on


def test_a_busy_window_is_charged_to_this_process() -> None:
    meter = CpuMeter({"load generator": os.getpid()})
    start = cpu_seconds(os.getpid())
    assert start is not None
    with meter.window():
        # Spin until the kernel has charged at least a few clock ticks.
        while (cpu_seconds(os.getpid()) or 0) - start < 0.05:
            sum(range(10_000))
    assert meter.spent["load generator"] > 0
    figures = meter.per_operation(1000)
    assert figures["cpu_ms_per_op_load_generator"] == figures["cpu_ms_per_op_total"] > 0


def test_the_process_on_a_listening_port_is_found() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert pid_listening_on(listener.getsockname()[1]) == os.getpid()


def test_gone_processes_and_no_operations_give_nothing() -> None:
    assert cpu_seconds(2**22 + 12345) is None
    assert CpuMeter({"x": os.getpid()}).per_operation(0) == {}
