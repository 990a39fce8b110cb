"""Starts, watches and stops the services as processes, the one way `make run`
(scripts/run_stack.py, scripts/run_cluster.py), the test fixtures (tests/support/stack.py)
and chat-bench (its own stacks and fault drills) all do it.

Standard library only: each service is its console script from this venv, ready when its
`GET /readyz` answers 200, stopped with SIGTERM and, after a grace period, SIGKILL.
"""

from chat_launcher.processes import (
    HOST,
    NotReady,
    ServiceProcess,
    die_with_parent,
    free_port,
    is_ready,
    launch,
    service_command,
    stop_all,
    wait_ready,
)

__all__ = [
    "HOST",
    "NotReady",
    "ServiceProcess",
    "die_with_parent",
    "free_port",
    "is_ready",
    "launch",
    "service_command",
    "stop_all",
    "wait_ready",
]
