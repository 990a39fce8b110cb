"""docs/configuration.md and .env.example are generated from the settings classes; a setting
added, removed or re-described without regenerating them fails here."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_configuration_reference_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/config_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_test_hooks_are_not_production_settings() -> None:
    from chat_core.settings import ServiceSettings
    from chat_core.testing import TestSettings
    from messaging.config import MessagingSettings
    from presence.config import PresenceSettings
    from ws_edge.config import EdgeSettings

    hooks = set(TestSettings.model_fields)
    for production in (ServiceSettings, EdgeSettings, MessagingSettings, PresenceSettings):
        assert not hooks & set(production.model_fields), production.__name__
    text = (REPO / ".env.example").read_text()
    assert not any(name.upper() in text for name in hooks)
