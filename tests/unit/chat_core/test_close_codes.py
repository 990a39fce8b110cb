"""The close-code tables of the README and the protocol guide are the catalogue in
chat_core.close_codes, not copies."""

from pathlib import Path

import pytest

from chat_core.close_codes import CLOSE_CODES, ClientAction, CloseCode, markdown_table

REPO = Path(__file__).parents[3]


@pytest.mark.parametrize("document", ["README.md", "docs/protocol.md"])
def test_the_tables_are_generated_from_the_catalogue(document: str) -> None:
    text = (REPO / document).read_text()
    start = text.index("<!-- close-codes:start -->\n") + len("<!-- close-codes:start -->\n")
    end = text.index("\n<!-- close-codes:end -->")
    assert text[start:end] == markdown_table()


def test_every_code_has_a_meaning_and_codes_that_stop_are_4000_and_above() -> None:
    assert set(CLOSE_CODES) == set(CloseCode)
    for code, (_meaning, action) in CLOSE_CODES.items():
        if code >= 4000:
            assert action is ClientAction.STOP, code
        else:
            # The spec's client reconnects below 4000, so nothing there may ask it to stop
            # except a frame that will be too big again.
            assert action is not ClientAction.STOP or code is CloseCode.MESSAGE_TOO_BIG, code
