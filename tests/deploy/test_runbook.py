"""docs/runbook.md and the alert rules stay in step: every alert's runbook_url lands on exactly
one heading of the runbook (slugs computed as GitHub computes them), and every alert section
of the runbook names an alert that exists."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs/runbook.md"
RULES = ROOT / "deploy/prometheus/alerts.yml"
BASE = "docs/runbook.md#"  # relative to the repository root (docs/runbook.md, its header)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text in lower case, punctuation other than
    ``-`` and ``_`` dropped, each space a ``-`` (github-slugger)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside fenced code blocks."""
    found: list[tuple[int, str]] = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def alert_sections() -> list[str]:
    """The headings under `## Alerts`, one per alert."""
    sections: list[str] = []
    inside = False
    for level, text in headings(RUNBOOK.read_text()):
        if level == 2:
            inside = text == "Alerts"
        elif inside and level == 3:
            sections.append(text)
    return sections


def test_slugs_as_github_computes_them() -> None:
    assert slug("GuichetDown") == "guichetdown"
    assert slug("Restore from the AOF") == "restore-from-the-aof"
    assert slug("The programme's reclaim day") == "the-programmes-reclaim-day"
    assert slug("Rotate `keys` (all)") == "rotate-keys-all"
    assert slug("Valkey failover: Cluster") == "valkey-failover-cluster"


def test_every_alert_links_to_exactly_one_heading_of_the_runbook() -> None:
    slugs = Counter(slug(text) for _, text in headings(RUNBOOK.read_text()))
    rules = alerts()
    assert len(rules) >= 19
    for rule in rules:
        url = rule["annotations"].get("runbook_url")
        assert url, f"{rule['alert']} has no runbook_url"
        assert url.startswith(BASE), url
        anchor = url.removeprefix(BASE)
        assert slugs[anchor] == 1, f"{rule['alert']}: #{anchor} matches {slugs[anchor]} headings"
        assert anchor == slug(rule["alert"]), f"{rule['alert']} links to another alert's section"


def test_every_alert_section_names_an_existing_alert_and_says_what_to_do() -> None:
    names = {rule["alert"] for rule in alerts()}
    sections = alert_sections()
    assert sorted(sections) == sorted(names)
    text = RUNBOOK.read_text()
    for name in sections:
        body = text.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        for part in ("**Meaning**", "**Impact**", "**First checks**", "**Actions**",
                     "**Escalate**"):  # fmt: skip
            assert part in body, f"{name}: no {part}"


def test_the_runbooks_own_links_resolve() -> None:
    text = RUNBOOK.read_text()
    slugs = {slug(heading) for _, heading in headings(text)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links
    assert set(links) <= slugs, set(links) - slugs


def test_the_runbook_covers_the_sale_day_procedures() -> None:
    slugs = {slug(text) for _, text in headings(RUNBOOK.read_text())}
    for procedure in ("open-a-room", "watch-the-panels", "raise-or-lower-the-rate",
                      "pause-and-resume", "release-a-wave", "rotate-keys", "valkey-failover",
                      "restore-from-the-aof", "the-programmes-reclaim-day"):  # fmt: skip
        assert procedure in slugs, procedure
