"""Fresh dev-mode user ids for every run, so runs never meet each other's users."""

import random

# The tests draw their users from +849...; the benchmark keeps to other mobile prefixes.
_PREFIXES = "3578"


def fresh_user_ids(count: int, rng: random.Random) -> list[str]:
    """`count` distinct Vietnamese mobile numbers in E.164 (+84, a mobile prefix, 8 digits)."""
    chosen: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < count:
        user_id = f"+84{rng.choice(_PREFIXES)}{rng.randrange(10**8):08d}"
        if user_id not in chosen:
            chosen.add(user_id)
            ordered.append(user_id)
    return ordered
