"""Identifiers: user ids (Vietnamese mobile numbers in dev mode) and document ids."""

import hashlib
import re

from bson import ObjectId

# +84 then nine digits; the first is a mobile prefix (3x, 5x, 7x, 8x, 9x).
_VN_MOBILE = re.compile(r"\+84[35789]\d{8}")
_DOCUMENT_ID = re.compile(r"[0-9a-f]{24}")
# A user id becomes a broker routing key (`user.<id>`, at most 255 bytes), so the bound is in
# bytes: Firebase caps a uid at 128 characters, which in UTF-8 can be 512 bytes.
MAX_USER_ID_BYTES = 128


def normalize_user_id(raw: str) -> str:
    """Undo the query-string decoding that turns a raw `+` into a space."""
    if raw.startswith(" ") and raw[1:].isdigit():
        return "+" + raw[1:]
    return raw


def is_vn_mobile(value: str) -> bool:
    return _VN_MOBILE.fullmatch(value) is not None


def is_user_id(value: str) -> bool:
    """Any auth mode's user id: printable, 1 to MAX_USER_ID_BYTES bytes of UTF-8."""
    # isprintable first: a lone surrogate (JSON's "\ud800") is not, and cannot be encoded.
    return value.isprintable() and 0 < len(value.encode()) <= MAX_USER_ID_BYTES


def new_id() -> str:
    # ObjectId strings sort by creation time, which is what message cursors need.
    return str(ObjectId())


def message_id_for(conversation_id: str, sender_id: str, client_message_id: str) -> str:
    """The messageId a send with this idempotency key gets: the same for every attempt, so
    the claim of the key and the message's by-id document are one insert.

    24 hex digits like any document id: 96 bits of BLAKE2b over the three parts, each
    prefixed by its length so that no two different triples encode alike (ids may contain
    any character). Two different keys share an id only by a 96-bit collision; one user's
    new key hitting another message's id needs a second preimage, not a birthday.
    """
    digest = hashlib.blake2b(digest_size=12, person=b"chat.msgid.v1")
    for part in (conversation_id, sender_id, client_message_id):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def is_document_id(value: str) -> bool:
    return _DOCUMENT_ID.fullmatch(value) is not None
