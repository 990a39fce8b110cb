"""CPU time per operation, per process, read from /proc.

Latency on a shared two-core machine is noisy; the CPU a process spends per operation is
not, so it is the figure to judge a change by. Each process of the stack (edge, messaging,
presence, the database, the broker) and this load generator is sampled before and after a
scenario's measured window: utime + stime from /proc/<pid>/stat, children not included.
"""

import contextlib
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


@dataclass
class CpuMeter:
    """Which processes to sample, by role."""

    pids: dict[str, int] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_stack(cls, services: Mapping[str, str], amqp_url: str, mongo_url: str) -> "CpuMeter":
        """`services`: role -> base URL; found by the port each listens on."""
        pids: dict[str, int] = {"load generator": os.getpid()}
        ports = {role: port_of(url, 80) for role, url in services.items()}
        ports["broker"] = port_of(amqp_url, 5672)
        ports["database"] = port_of(mongo_url, 27017)
        for role, port in ports.items():
            pid = pid_listening_on(port)
            if pid is not None:
                pids[role] = pid
        return cls(pids)

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """Add the CPU each process spends inside this block to `spent`."""
        before = {role: cpu_seconds(pid) for role, pid in self.pids.items()}
        try:
            yield
        finally:
            for role, pid in self.pids.items():
                start, end = before[role], cpu_seconds(pid)
                if start is not None and end is not None:
                    self.spent[role] = self.spent.get(role, 0.0) + end - start

    def per_operation(self, operations: int) -> dict[str, float]:
        """Milliseconds of CPU per operation, per process and summed."""
        if operations <= 0 or not self.spent:
            return {}
        figures = {
            f"cpu_ms_per_op_{role.replace(' ', '_').replace('-', '_')}": round(
                seconds * 1000 / operations, 3
            )
            for role, seconds in sorted(self.spent.items())
        }
        figures["cpu_ms_per_op_total"] = round(sum(self.spent.values()) * 1000 / operations, 3)
        return figures
