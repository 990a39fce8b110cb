"""CPU time per operation, per process, read from /proc.

Latency on a shared two-core machine is noisy; the CPU a process spends per operation is
not, so it is the figure to judge a change by. Each process of the stack (edge, messaging,
presence, the database, the broker) and this load generator is sampled before and after a
scenario's measured window: utime + stime from /proc/<pid>/stat, children not included.
"""

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

_TICKS = os.sysconf("SC_CLK_TCK")
_LISTEN = "0A"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: fields start after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The process that holds the listening socket of a local TCP port (same user, or root)."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


GENERATOR = "generator"


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def role_key(role: str) -> str:
    return role.replace(" ", "_").replace("-", "_")


def per_operation(spent: Mapping[str, float], operations: int) -> dict[str, float]:
    """Milliseconds of CPU per operation: `cpu_ms_per_op_<role>` for each process,
    `..._servers` (every process but the generator) and `..._total`."""
    if operations <= 0 or not spent:
        return {}
    figures = {
        f"cpu_ms_per_op_{role_key(role)}": round(seconds * 1000 / operations, 3)
        for role, seconds in sorted(spent.items())
    }
    servers = sum(seconds for role, seconds in spent.items() if role != GENERATOR)
    figures["cpu_ms_per_op_servers"] = round(servers * 1000 / operations, 3)
    figures["cpu_ms_per_op_total"] = round(sum(spent.values()) * 1000 / operations, 3)
    return figures


@dataclass
class Window:
    """CPU seconds each process spent inside one `CpuMeter.window()` block."""

    spent: dict[str, float] = field(default_factory=dict)

    def per_operation(self, operations: int) -> dict[str, float]:
        return per_operation(self.spent, operations)


@dataclass
class CpuMeter:
    """Which processes to sample, by role: the stack's, found by the port each listens on
    (edge, messaging, presence, database, broker), and this generator."""

    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_stack(cls, services: Mapping[str, str], amqp_url: str, mongo_url: str) -> "CpuMeter":
        """`services`: role -> base URL."""
        pids: dict[str, int] = {GENERATOR: os.getpid()}
        ports = {role: port_of(url, 80) for role, url in services.items()}
        ports["broker"] = port_of(amqp_url, 5672)
        ports["database"] = port_of(mongo_url, 27017)
        for role, port in ports.items():
            pid = pid_listening_on(port)
            if pid is not None:
                pids[role] = pid
        return cls(pids)

    def sample(self) -> dict[str, float | None]:
        return {role: cpu_seconds(pid) for role, pid in self.pids.items()}

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        """The CPU each process spends inside this block (filled in when it ends).

        This process's cyclic garbage collector is held off inside and run after: a full
        collection over thousands of sockets' objects stalls it for 100-450 ms (seen in the
        old compare runs), which would land in the very latencies being measured."""
        window = Window()
        collecting = gc.isenabled()
        gc.disable()
        before = self.sample()
        try:
            yield window
        finally:
            after = self.sample()
            if collecting:
                gc.enable()
            for role, start in before.items():
                end = after.get(role)
                if start is not None and end is not None:
                    window.spent[role] = end - start
