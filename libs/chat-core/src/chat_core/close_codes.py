"""Every WebSocket close code the system sends, named once, with what a client should do.

Codes below 4000 make the spec's reference client reconnect; 4000 and above make it stop.
"""

from enum import IntEnum


class ClientAction(IntEnum):
    RECONNECT = 1  # reconnect (with backoff) and resume with `since`
    BACK_OFF = 2  # reconnect later, with a longer backoff
    STOP = 3  # do not reconnect; tell the user


class CloseCode(IntEnum):
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 3008
    UNAUTHENTICATED = 4001
    USER_MISMATCH = 4002
    ACCOUNT_DISABLED = 4003
    TOO_MANY_SOCKETS = 4029


# code -> (meaning, what the client should do); the README's table is written from this.
CLOSE_CODES: dict[CloseCode, tuple[str, ClientAction]] = {
    CloseCode.GOING_AWAY: ("the edge is going away", ClientAction.RECONNECT),
    CloseCode.POLICY_VIOLATION: (
        "sustained abuse: over the frame rate limit or too many invalid frames",
        ClientAction.BACK_OFF,
    ),
    CloseCode.MESSAGE_TOO_BIG: ("a frame over the size limit", ClientAction.STOP),
    CloseCode.SERVICE_RESTART: (
        "the edge is restarting (deploy, or its broker node was lost)",
        ClientAction.RECONNECT,
    ),
    CloseCode.TRY_AGAIN_LATER: ("the edge is full", ClientAction.BACK_OFF),
    CloseCode.SLOW_CONSUMER: (
        "the client did not read fast enough; its outbound buffer overflowed",
        ClientAction.RECONNECT,
    ),
    CloseCode.UNAUTHENTICATED: (
        "token missing, malformed, invalid or expired",
        ClientAction.STOP,
    ),
    CloseCode.USER_MISMATCH: ("the token's user is not the user in the path", ClientAction.STOP),
    CloseCode.ACCOUNT_DISABLED: ("the account is disabled", ClientAction.STOP),
    CloseCode.TOO_MANY_SOCKETS: (
        "too many sockets for this user; this, the oldest, was closed",
        ClientAction.STOP,
    ),
}

ACTION_TEXT: dict[ClientAction, str] = {
    ClientAction.RECONNECT: "reconnect with backoff, then resume with `since`",
    ClientAction.BACK_OFF: "reconnect later, with a longer backoff",
    ClientAction.STOP: "do not reconnect; tell the user",
}


def markdown_table() -> str:
    """The README's close-code table (a unit test keeps the README equal to this)."""
    rows = [
        "| close code | meaning | what the client should do |",
        "| --- | --- | --- |",
    ]
    for code in sorted(CLOSE_CODES):
        meaning, action = CLOSE_CODES[code]
        rows.append(f"| {int(code)} | {meaning} | {ACTION_TEXT[action]} |")
    return "\n".join(rows)
