"""What a report says beyond the verdicts: ancillary findings, a possible responder,
and the advisor's recommendation (criteria.md 9; issue 3).

Ancillary findings never change a category; they are reported, and when RECIST 1.1
says SD with a small size change while they speak for response, the report flags a
possible responder and names the criteria that could show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from service.domain.advisor import Recommendation
from service.domain.findings import SMALL_CHANGE_PERCENT, Ancillary, ancillary_findings
from service.domain.model import Assessment, History, Response
from service.domain.sums import display

_ALTERNATIVES = {
    "choi": "Choi (a >= 15 % density decrease counts as response)",
    "chun": "Chun morphologic criteria (homogeneous attenuation and a sharp interface)",
}


def commentary(
    history: History,
    assessments: Sequence[Assessment],
    day: date,
    recommendations: Sequence[Recommendation],
) -> tuple[str, ...]:
    """Report lines for one timepoint, after the per-criterion verdicts."""
    timepoint = history.timepoint(day)
    found = ancillary_findings(history.lesions, timepoint)
    lines: list[str] = []
    if found:
        lines.append(
            "Ancillary findings (ESGAR; never change a category): "
            + "; ".join(str(finding) for finding in found)
        )
    flag = possible_responder(assessments, day, found)
    if flag:
        lines.append(flag)
    lines.append(
        "Recommended criteria: " + "; ".join(f"{r.criterion}: {r.reason}" for r in recommendations)
    )
    return tuple(lines)


def possible_responder(
    assessments: Sequence[Assessment], day: date, found: Sequence[Ancillary]
) -> str | None:
    """The possible-responder flag, or None (criteria.md 9, [I] thresholds)."""
    recist = next((a for a in assessments if a.criterion == "recist-1.1"), None)
    if recist is None:
        return None
    response = recist.at(day)
    sums = response.sums
    if response.overall is not Response.SD or sums is None or sums.pct_from_baseline is None:
        return None
    if abs(sums.pct_from_baseline) >= SMALL_CHANGE_PERCENT:
        return None
    signs = [finding for finding in found if finding.suggests_response]
    if not signs:
        return None
    applied = {a.criterion for a in assessments}
    others = [text for name, text in _ALTERNATIVES.items() if name not in applied]
    consider = f"; consider {' or '.join(others)}" if others else ""
    return (
        f"Possible responder: RECIST 1.1 SD with {display(sums.pct_from_baseline)} % size "
        f"change from baseline, but {', '.join(str(s) for s in signs)} suggest response"
        f"{consider}"
    )
