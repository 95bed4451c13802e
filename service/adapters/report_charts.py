"""Charts of a response assessment, drawn with matplotlib's Agg canvas (issue 9).

* :func:`sum_chart`: the sum of diameters over time with the baseline, the nadir and
  the RECIST 1.1 thresholds (criteria.md 3.4: PR at 30 % below baseline, PD at 20 %
  and 5 mm above the nadir);
* :func:`spider_chart`: each target lesion's percent change from its baseline size;
* :func:`waterfall_chart`: the best percent change of each patient of a cohort.

Figures are built with the object API (``matplotlib.figure.Figure``), never pyplot, so
no global state is shared between requests. SVG keeps text as text (for HTML, inline);
PNG is for the PDF. matplotlib is imported at the first chart, not with the service: it
is ~30 MB of every worker's memory and ~0.2 s of its start (issue 7, worker RSS), for
pages that some deployments never serve.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, ParamSpec

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Format = Literal["svg", "png"]

# Response -> bar colour of the waterfall plot (colour-blind-safe Okabe-Ito palette).
RESPONSE_COLOURS = {
    "CR": "#009E73",
    "PR": "#56B4E9",
    "SD": "#E69F00",
    "PD": "#D55E00",
}
OTHER_COLOUR = "#999999"
_SIZE = (6.4, 3.4)  # inches
_P = ParamSpec("_P")


def _styled(chart: Callable[_P, bytes]) -> Callable[_P, bytes]:
    """*chart*, drawn in the charts' style: text stays text in SVG, and its ids are
    derived from a fixed salt, not a random one."""

    @functools.wraps(chart)
    def drawn(*args: _P.args, **kwargs: _P.kwargs) -> bytes:
        import matplotlib as mpl

        with mpl.rc_context(
            {
                "svg.fonttype": "none",
                "svg.hashsalt": "tumour-response",
                "font.family": "DejaVu Sans",
                "font.size": 9,
            }
        ):
            return chart(*args, **kwargs)

    return drawn


@dataclass(frozen=True, slots=True)
class SumSeries:
    """What :func:`sum_chart` draws; lengths in mm."""

    points: Sequence[tuple[date, float]]  # evaluable sums in date order
    baseline_mm: float
    nadir_mm: float | None  # smallest sum before the last point
    pd_threshold_mm: float | None  # the sum at which PD starts
    pr_threshold_mm: float  # the sum at which PR starts


@_styled
def sum_chart(series: SumSeries, fmt: Format) -> bytes:
    """The sum of diameters over time, with baseline, nadir, +20 % and -30 % lines."""
    figure, axes = _figure()
    values = [value for _, value in series.points]
    axes.plot(_days(series.points), values, marker="o", color="#0072B2", lw=2)
    axes.axhline(series.baseline_mm, color="#444444", lw=1, label="baseline")
    axes.axhline(
        series.pr_threshold_mm, color="#56B4E9", ls="--", lw=1, label="-30 % from baseline (PR)"
    )
    if series.nadir_mm is not None:
        axes.axhline(series.nadir_mm, color="#009E73", ls=":", lw=1.2, label="nadir")
    if series.pd_threshold_mm is not None:
        axes.axhline(
            series.pd_threshold_mm, color="#D55E00", ls="--", lw=1, label="+20 % from nadir (PD)"
        )
    axes.set_ylabel("sum of diameters (mm)")
    lines = [series.baseline_mm, series.pd_threshold_mm or 0, *values]
    axes.set_ylim(0, max(lines) * 1.15 or 1)
    axes.set_title("Sum of diameters (RECIST 1.1)")
    _date_axis(figure, axes)
    axes.legend(loc="lower left", fontsize=7, framealpha=0.8)
    return _save(figure, fmt)


@_styled
def spider_chart(series: Mapping[str, Sequence[tuple[date, float]]], fmt: Format) -> bytes:
    """Per-lesion percent change from baseline over time, with the -30 % / +20 % lines."""
    figure, axes = _figure()
    for name, points in series.items():
        axes.plot(_days(points), [value for _, value in points], marker="o", label=name)
    _thresholds(axes)
    changes = [value for points in series.values() for _, value in points]
    axes.set_ylim(min(-40.0, *changes) - 10, max(30.0, *changes) + 10)
    axes.set_ylabel("change from baseline (%)")
    axes.set_title("Target lesions: change from baseline")
    _date_axis(figure, axes)
    if series:
        axes.legend(loc="upper left", fontsize=7, framealpha=0.8, ncol=2)
    return _save(figure, fmt)


@_styled
def waterfall_chart(bars: Sequence[tuple[str, float, str]], fmt: Format) -> bytes:
    """One bar per patient: (label, best percent change, best overall response), sorted
    from the largest increase to the largest decrease."""
    figure, axes = _figure()
    ordered = sorted(bars, key=lambda bar: bar[1], reverse=True)
    positions = range(len(ordered))
    axes.bar(
        positions,
        [value for _, value, _ in ordered],
        color=[RESPONSE_COLOURS.get(response, OTHER_COLOUR) for _, _, response in ordered],
    )
    axes.set_xticks(list(positions), [label for label, _, _ in ordered], rotation=60, fontsize=7)
    _thresholds(axes)
    axes.set_ylabel("best change from baseline (%)")
    axes.set_title("Best percent change in the sum of diameters")
    figure.tight_layout()
    return _save(figure, fmt)


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=100)
    axes = figure.add_subplot()
    axes.grid(axis="y", color="#dddddd", lw=0.6)
    return figure, axes


def _days(points: Sequence[tuple[date, float]]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return np.array([day for day, _ in points], dtype="datetime64[D]")


def _thresholds(axes: Axes) -> None:
    axes.axhline(0, color="#444444", lw=1)
    axes.axhline(-30, color="#56B4E9", ls="--", lw=1, label="-30 % (PR)")
    axes.axhline(20, color="#D55E00", ls="--", lw=1, label="+20 % (PD)")


def _date_axis(figure: Figure, axes: Axes) -> None:
    figure.autofmt_xdate()


def _save(figure: Figure, fmt: Format) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=150 if fmt == "png" else 100)
    return buffer.getvalue()
