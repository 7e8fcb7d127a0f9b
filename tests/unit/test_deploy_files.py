"""Ops files name only metrics Guichet exports: a renamed metric breaks a test, not a dashboard
on sale day."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import guichet.metrics  # noqa: F401  (registers every metric)

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"\bguichet_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in _SUFFIXES)
    return names


def test_grafana_dashboards_query_exported_metrics() -> None:
    # labels, variables and the build from source: tests/deploy/test_dashboards.py
    files = sorted((ROOT / "deploy/grafana").glob("*.json"))
    assert len(files) == 3
    dashboards = [json.loads(path.read_text()) for path in files]
    exprs = [t["expr"] for d in dashboards for p in d["panels"] for t in p.get("targets", [])]
    assert exprs
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    assert used
    assert used <= exported(), used - exported()


def test_alert_rules_query_exported_metrics() -> None:
    text = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    used = set(_NAME.findall(text))
    assert "guichet_room_pacer_ticks_total" in used
    assert used <= exported(), used - exported()


def test_every_alert_has_a_summary_a_description_and_a_promtool_test() -> None:
    # runbook_url and its section: tests/deploy/test_runbook.py
    import yaml  # type: ignore[import-untyped]

    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 17
    for rule in alerts:
        notes = rule["annotations"]
        assert notes.get("summary"), rule["alert"]
        assert notes.get("description"), rule["alert"]
    tested = (ROOT / "deploy/prometheus/alerts_test.yml").read_text()
    untested = [rule["alert"] for rule in alerts if f'alertname="{rule["alert"]}"' not in tested]
    assert untested == [], f"alerts without a promtool unit test: {untested}"
