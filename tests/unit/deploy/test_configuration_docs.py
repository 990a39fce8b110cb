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


def test_every_setting_is_described_by_its_field() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "config_reference", REPO / "scripts/config_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("config_reference", reference)  # dataclasses look their module up
    spec.loader.exec_module(reference)
    for _heading, cls, _readers in (*reference.SECTIONS, reference.TEST_SECTION):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name}"
            # A section comment once leaked into the next setting's description.
            assert "---" not in field.description, f"{cls.__name__}.{name}"


def test_secrets_are_typed_as_secrets() -> None:
    from pydantic import SecretStr

    from chat_core.settings import ServiceSettings

    settings = ServiceSettings(
        amqp_url=SecretStr("amqp://u:hunter2@h/"), mongo_url=SecretStr("mongodb://u:hunter2@h/")
    )
    assert "hunter2" not in repr(settings)
    assert settings.broker_urls == ["amqp://u:hunter2@h/"]
