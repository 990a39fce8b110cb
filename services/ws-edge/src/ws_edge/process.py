"""Facts about this process that operators and the benchmarks read from /stats."""

from pathlib import Path

_STATUS = Path("/proc/self/status")


def resident_set_bytes() -> int | None:
    """Current RSS (not the peak), or None where /proc is not there."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
