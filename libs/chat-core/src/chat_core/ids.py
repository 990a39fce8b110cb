"""Identifiers: user ids (Vietnamese mobile numbers in dev mode) and sortable document ids."""

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


def is_document_id(value: str) -> bool:
    return _DOCUMENT_ID.fullmatch(value) is not None
