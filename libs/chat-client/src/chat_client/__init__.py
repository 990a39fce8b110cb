"""A typed asyncio client for the chat backend, built on the event schemas in chat_core."""

from chat_client.backoff import Backoff
from chat_client.connection import (
    CaughtUp,
    ChatClient,
    Connected,
    Disconnected,
    Event,
    NotConnected,
    UnknownEvent,
    close_action,
    socket_url,
)
from chat_client.rest import ApiError, RestClient

__all__ = [
    "ApiError",
    "Backoff",
    "CaughtUp",
    "ChatClient",
    "Connected",
    "Disconnected",
    "Event",
    "NotConnected",
    "RestClient",
    "UnknownEvent",
    "close_action",
    "socket_url",
]
