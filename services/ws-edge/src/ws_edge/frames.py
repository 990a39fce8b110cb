"""Decoding client frames, and saying plainly what is wrong with a bad one."""

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from chat_core.events import CLIENT_EVENTS, ClientFrame, client_frame_adapter

MAX_ECHO_CHARS = 40


class BadFrame(Exception):
    pass


def decode_client_frame(text: str) -> ClientFrame:
    try:
        return client_frame_adapter.validate_json(text)
    except ValidationError as error:
        raise BadFrame(describe(error.errors(include_url=False))) from error


def describe(errors: list[ErrorDetails]) -> str:
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return "frame is not valid JSON"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        return "frame must be a JSON object"
    if kind == "union_tag_not_found":
        return "frame has no 'event' field"
    if kind == "union_tag_invalid":
        tag = str(first.get("ctx", {}).get("tag"))
        # Quoted back, but short: an error must never be bigger than the frame it answers.
        shown = tag if len(tag) <= MAX_ECHO_CHARS else tag[:MAX_ECHO_CHARS] + "..."
        return f"unknown event {shown!r}; expected one of: {', '.join(CLIENT_EVENTS)}"
    event = first["loc"][0]
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'][1:]) or 'frame'}: {e['msg']}" for e in errors
    )
    return f"invalid {event} event: {problems}"
