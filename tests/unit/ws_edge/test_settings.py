"""The edge's own settings that reach broker names are checked when the edge starts."""

import pytest
from pydantic import ValidationError

from ws_edge.config import EdgeSettings


def test_an_edge_id_too_long_for_a_queue_name_is_refused_at_start() -> None:
    assert EdgeSettings(edge_id="edge-a").edge_id == "edge-a"
    assert EdgeSettings().edge_id  # the computed default passes
    for bad in ("é" * 65, "", "a\nb"):
        with pytest.raises(ValidationError, match="EDGE_ID must be printable"):
            EdgeSettings(edge_id=bad)
