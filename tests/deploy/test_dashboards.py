"""The Grafana dashboards (deploy/grafana/src, built as code) match their committed JSON and
ask only for what Guichet exports: every metric a query or a variable names, every label it
filters, groups or prints by. A renamed metric or label breaks this test, not a panel on sale
day."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

import guichet.metrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
TARGET = frozenset({"job", "instance"})  # Prometheus adds these to every series
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset"}
)  # fmt: skip
_MATCHERS = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$")


def exported() -> dict[str, frozenset[str]]:
    """Every series name Guichet exposes → its labels, as prometheus_client names them."""
    series: dict[str, frozenset[str]] = {"up": TARGET}
    for metric in vars(guichet.metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        name, labels = metric._name, frozenset(metric._labelnames) | TARGET
        if metric._type == "counter":
            series |= {f"{name}_total": labels, f"{name}_created": labels}
        elif metric._type == "histogram":
            series |= {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels,
                       f"{name}_count": labels, f"{name}_created": labels}  # fmt: skip
        else:
            series[name] = labels
    return series


def problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What in a PromQL expression names a metric or a label Guichet does not export."""
    found: list[str] = []
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors
    metrics: list[str] = []
    for match in _IDENT.finditer(_GROUPING.sub("", re.sub(r"\{[^}]*\}", "", bare))):
        name, call = match.groups()
        if call is None and name not in KEYWORDS:
            metrics.append(name)
    if not metrics:
        found.append(f"no metric in {expr!r}")
    for name in metrics:
        if name not in series:
            found.append(f"unknown metric {name}")
    for name, body in _MATCHERS.findall(bare):
        for label in _LABEL.findall(body):
            if name in series and label not in series[name]:
                found.append(f"{name} has no label {label}")
    for clause in _GROUPING.findall(bare):
        for label in filter(None, (part.strip() for part in clause.split(","))):
            for name in metrics:
                if name in series and label not in series[name]:
                    found.append(f"grouping by {label}: {name} has no such label")
    return found


def load_builder() -> ModuleType:
    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("grafana-foundation-sdk is missing in CI: pip install -e '.[deploy]'")
        pytest.skip("grafana-foundation-sdk not installed (pip install -e '.[deploy]')")
    sys.path.insert(0, str(GRAFANA / "src"))
    try:
        return importlib.import_module("build")
    finally:
        sys.path.remove(str(GRAFANA / "src"))


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row's panels


def test_the_committed_dashboards_are_a_fresh_build_of_their_source() -> None:
    built = load_builder().dashboards()
    on_disk = {path.name: path.read_text() for path in GRAFANA.glob("*.json")}
    assert sorted(built) == sorted(on_disk), "run python deploy/grafana/src/build.py"
    for name, text in built.items():
        assert on_disk[name] == text, f"deploy/grafana/{name} drifted: run build.py"


def test_one_dashboard_per_audience_with_unique_uids() -> None:
    dashboards = committed()
    uids = [d["uid"] for d in dashboards.values()]
    assert sorted(uids) == ["guichet-draws", "guichet-programme", "guichet-sale-day"]
    assert [f"{d['uid']}.json" for d in dashboards.values()] == list(dashboards)


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_query_names_exported_metrics_and_labels(name: str) -> None:
    dashboard = committed()[name]
    series = exported()
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    targets = [(p, t) for p in panels(dashboard) for t in p.get("targets", [])]
    assert len(targets) >= 10
    for panel, target in targets:
        where = f"{name} panel {panel['id']} ({panel['title']})"
        assert problems(target["expr"], series) == [], where
        used = {a or b for a, b in _VARIABLE.findall(target["expr"] + panel["title"])}
        assert used <= variables, f"{where}: undefined variables {used - variables}"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        kept = {part.strip() for clause in _GROUPING.findall(target["expr"])
                for part in clause.split(",")}  # fmt: skip
        assert legend <= kept, f"{where}: the legend prints labels the query drops"


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_variable_resolves_to_an_exported_metric_and_label(name: str) -> None:
    series = exported()
    variables = committed()[name]["templating"]["list"]
    assert variables[0] == variables[0] | {"name": "datasource", "type": "datasource",
                                           "query": "prometheus"}  # fmt: skip
    labelled = [v for v in variables if v["type"] == "query"]
    assert labelled
    for variable in labelled:
        match = _LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        metric, label = match.groups()
        assert metric in series, variable["query"]
        assert label in series[metric], variable["query"]
        assert label == variable["name"]
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", sorted(committed()))
def test_panels_have_unique_ids_a_unit_rows_and_the_datasource_variable(name: str) -> None:
    dashboard = committed()[name]
    everything = list(panels(dashboard))
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert dashboard["panels"][0]["type"] == "row"
    assert sum(p["type"] == "row" for p in everything) >= 2
    for panel in everything:
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: {panel['title']} no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]


def test_the_checker_catches_unknown_metrics_and_labels() -> None:
    series = exported()
    good = ('histogram_quantile(0.99, sum by (le, op) '
            '(rate(guichet_redis_call_duration_seconds_bucket{op=~"$x"}[5m])))')  # fmt: skip
    assert problems(good, series) == []
    assert problems("sum(rate(guichet_room_joins_total[1m])) by (room, phase)", series) == []
    assert problems("max by (programme) (guichet_programme_reclaim_timestamp_seconds) - time()",
                    series) == []  # fmt: skip
    assert problems("sum(rate(guichet_room_joined_total[1m]))", series) == [
        "unknown metric guichet_room_joined_total"
    ]
    assert problems("guichet_room_waiting", series) == []
    assert problems("guichet_room_waiting_total", series) != []  # a gauge has no _total
    assert problems('guichet_room_waiting{sale="x"}', series) == [
        "guichet_room_waiting has no label sale"
    ]
    assert problems("sum by (le, room) (rate(guichet_room_joins_total[1m]))", series) == [
        "grouping by le: guichet_room_joins_total has no such label"
    ]
    assert problems("time()", series) == ["no metric in 'time()'"]
