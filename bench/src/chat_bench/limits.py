"""The open-file limit: every socket is a file, and 10,000 connections need that many."""

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class OpenFileLimit:
    soft: int
    hard: int
    raised_from: int

    def to_json(self) -> dict[str, int]:
        return {"soft": self.soft, "hard": self.hard, "raised_from": self.raised_from}


def raise_open_file_limit() -> OpenFileLimit:
    """Soft limit up to the hard one; children (a stack started here) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    new_soft, new_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OpenFileLimit(soft=new_soft, hard=new_hard, raised_from=soft)


def shortfall(limit: OpenFileLimit, sockets: int, reserve: int = 256) -> str | None:
    """Why the limit is too low for `sockets`, or None when it is enough."""
    if sockets + reserve <= limit.soft:
        return None
    return (
        f"open-file limit {limit.soft} (hard {limit.hard}) is too low for {sockets} sockets; "
        f"raise the hard limit (ulimit -Hn, /etc/security/limits.conf, or LimitNOFILE=)"
    )
