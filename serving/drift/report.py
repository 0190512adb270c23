"""The report: an HTML page with a plot per column and for the predictions (baseline against the
period), and the JSON summary. plotly.js is written into the page once, inline: it opens offline."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.drift.compare import Verdict, is_categorical, levels_and_quantiles, shares

BASELINE_COLOUR, CURRENT_COLOUR = "#7f7f7f", "#d62728"


@dataclass
class Section:
    """One column (or the predictions): its verdict, or why it has none, and what the plot shows."""

    name: str
    stats: dict[str, Any] | None
    values: Any  # np.ndarray of numbers, or a list of categories
    verdict: Verdict | None
    note: str = ""


@dataclass
class Report:
    model: dict[str, str]
    source: str
    period: dict[str, str]
    baseline: str
    counts: dict[str, int]
    problems: list[str]
    columns: list[Section]
    predictions: Section
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        return [s.name for s in [*self.columns, self.predictions] if s.verdict is not None and s.verdict.drifted]

    def summary(self) -> dict[str, Any]:
        def one(section: Section) -> dict[str, Any]:
            return section.verdict.summary() if section.verdict else {"drifted": None, "note": section.note}

        return {
            "model": self.model,
            "source": self.source,
            "period": self.period,
            "baseline": self.baseline,
            **self.counts,
            "problems": self.problems,
            "drifted": bool(self.drifted),
            "drifted_columns": self.drifted,
            "columns": {s.name: one(s) for s in self.columns},
            "predictions": one(self.predictions),
        }


def figure(section: Section) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    stats = section.stats
    if stats is not None and is_categorical(stats):
        names, expected, observed = shares(stats, list(section.values))
        fig.add_bar(x=names, y=expected, name="baseline", marker_color=BASELINE_COLOUR)
        fig.add_bar(x=names, y=observed, name="this period", marker_color=CURRENT_COLOUR)
        fig.update_layout(barmode="group", yaxis_title="share of rows", yaxis_tickformat=".0%")
    elif stats is not None:
        levels, expected = levels_and_quantiles(stats)
        shares_axis = [0.0, *levels.tolist(), 1.0]
        fig.add_scatter(x=[stats["min"], *expected, stats["max"]], y=shares_axis, name="baseline",
                        mode="lines+markers", line={"color": BASELINE_COLOUR, "width": 3})  # fmt: skip
        values = np.asarray(section.values, dtype=float)
        if len(values):
            current = [values.min(), *np.quantile(values, levels), values.max()]
            fig.add_scatter(x=current, y=shares_axis, name="this period", mode="lines+markers",
                            line={"color": CURRENT_COLOUR, "width": 3})  # fmt: skip
        fig.update_layout(xaxis_title=section.name, yaxis_title="share of rows at or below", yaxis_tickformat=".0%")
    fig.update_layout(title=title(section), height=340, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      template="plotly_white", legend={"orientation": "h", "y": -0.25})  # fmt: skip
    return fig


def title(section: Section) -> str:
    verdict = section.verdict
    if verdict is None:
        return f"{section.name}: {section.note}"
    word = "DRIFT" if verdict.drifted else "no drift"
    statistic = verdict.statistic.replace("_", " ")
    return f"{section.name}: {word} ({statistic} {verdict.value:.3f}, threshold {verdict.threshold:g})"


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    summary = directory / "summary.json"
    summary.write_text(json.dumps(report.summary(), indent=2) + "\n")
    page = directory / "report.html"
    page.write_text(render(report))
    return page, summary


def render(report: Report) -> str:
    sections = [*report.columns, report.predictions]
    plots = []
    for number, section in enumerate(sections):
        # The library goes into the first plot's div only: one copy, inline, no CDN.
        div = figure(section).to_html(full_html=False, include_plotlyjs=number == 0, div_id=f"plot-{number}",
                                      config={"displaylogo": False, "responsive": True})  # fmt: skip
        plots.append(f'<section class="plot" data-column="{html.escape(section.name)}">{div}</section>')
    rows = "".join(_row(s) for s in sections)
    verdict = f"drift in {', '.join(report.drifted)}" if report.drifted else "no drift"
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in report.problems)
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {html.escape(report.model["name"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.drift{{color:#d62728;font-weight:bold}}</style>
</head><body>
<h1>Drift report: {html.escape(report.model["name"])} version {html.escape(report.model["version"])}: {verdict}</h1>
<p>Captured requests in {html.escape(report.source)} from {html.escape(report.period["since"])} to
{html.escape(report.period["until"])}: {html.escape(counts)}. Baseline: {html.escape(report.baseline)}.</p>
<table><tr><th>column</th><th>statistic</th><th>value</th><th>threshold</th><th>verdict</th></tr>{rows}</table>
{f"<h2>Records skipped (first few)</h2><ul>{problems}</ul>" if problems else ""}
{"".join(plots)}
</body></html>
"""


def _row(section: Section) -> str:
    verdict = section.verdict
    if verdict is None:
        return f"<tr><td>{html.escape(section.name)}</td><td colspan=4>{html.escape(section.note)}</td></tr>"
    word = '<span class="drift">drift</span>' if verdict.drifted else "no drift"
    return (f"<tr><td>{html.escape(section.name)}</td><td>{verdict.statistic.replace('_', ' ')}</td>"
            f"<td>{verdict.value:.4f}</td><td>{verdict.threshold:g}</td><td>{word}</td></tr>")  # fmt: skip


def markdown(report: Report) -> str:
    """The summary as a Markdown table (a workflow's job summary)."""
    verdict = f"drift in {', '.join(report.drifted)}" if report.drifted else "no drift"
    lines = [
        f"### Drift: {report.model['name']} version {report.model['version']}: {verdict}",
        "",
        f"{report.source}, {report.period['since']} to {report.period['until']}, "
        + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts.items()),
        "",
        "| column | statistic | value | threshold | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section in [*report.columns, report.predictions]:
        v = section.verdict
        if v is None:
            lines.append(f"| {section.name} | {section.note} | | | |")
        else:
            word = "**drift**" if v.drifted else "no drift"
            lines.append(
                f"| {section.name} | {v.statistic.replace('_', ' ')} | {v.value:.4f} | {v.threshold:g} | {word} |"
            )
    return "\n".join(lines) + "\n"
