"""What every Guichet dashboard shares: the data source, label variables, panel builders.

Panel ids are given by hand and never reused (a link to ``viewPanel=<id>`` must keep working);
every panel has a unit; every query goes to the ``$datasource`` variable.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
PER_SECOND = "suffix:/s"  # events per second that are not requests (Grafana custom unit)


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(label: str, metric: str, title: str) -> dashboard.QueryVariable:
    """A multi-value variable over ``label``'s values on ``metric`` (All = ``.*``)."""
    return (
        dashboard.QueryVariable(label)
        .label(title)
        .query(f"label_values({metric}, {label})")
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def _targets(queries: tuple[tuple[str, str], ...]) -> list[Builder[object]]:
    refs = string.ascii_uppercase
    return [
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(refs[i])
        for i, (expr, legend) in enumerate(queries)
    ]


def series(
    panel_id: int,
    title: str,
    unit: str,
    *queries: tuple[str, str],
    description: str = "",
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    """A time series panel; ``queries`` are (PromQL, legend) pairs."""
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .targets(_targets(queries))  # type: ignore[arg-type]
    )
    return panel.description(description) if description else panel


def single(
    panel_id: int, title: str, unit: str, expr: str, *, description: str = "", width: int = 6
) -> stat.Panel:
    """A stat panel showing one current value."""
    panel = (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(4)
        .with_target(prometheus.Dataquery().expr(expr).instant().ref_id("A"))
    )
    return panel.description(description) if description else panel


Panel = timeseries.Panel | stat.Panel


@dataclass
class Row:
    """A row (its id given by hand) and the panels under it."""

    row_id: int
    title: str
    panels: list[Panel] = field(default_factory=list)


def board(
    uid: str,
    title: str,
    description: str,
    variables: list[dashboard.QueryVariable],
    rows: list[Row],
) -> dashboard.Dashboard:
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["guichet"])
        .timezone("utc")
        .time("now-1h", "now")
        .refresh("10s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
    )
    for variable in variables:
        built = built.with_variable(variable)
    for row in rows:
        built = built.with_row(dashboard.Row(row.title).id(row.row_id))
        for panel in row.panels:
            built = built.with_panel(panel)
    return built


def render(built: dashboard.Dashboard) -> str:
    """The dashboard's JSON as committed: stable key order, one trailing newline."""
    text = json.dumps(built.build(), cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"
