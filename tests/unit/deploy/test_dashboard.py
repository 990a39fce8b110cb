"""The Grafana dashboard charts only metrics the services export (names drift otherwise)."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import chat_core.metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/dashboards/chat.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def test_dashboard_charts_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in expressions for name in re.findall(r"\bchat_[a-z_]+", e)}
    assert used, "the dashboard charts chat_* metrics"
    assert used <= exported_names(), used - exported_names()
    defined = {
        name
        for name in dir(chat_core.metrics)
        if hasattr(getattr(chat_core.metrics, name), "_name")
    }
    charted_families = {getattr(chat_core.metrics, name)._name for name in defined}
    assert {n for n in charted_families if not any(n in e for e in expressions)} == set(), (
        "every metric has a panel"
    )
