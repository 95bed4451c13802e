"""Build a patient's :class:`History` from the reports stored for them.

Three decisions live here, all pure:

* which observations are the same lesion over time (contract section 3, "Lesion
  identity": Tracking UID first, then the Tracking Identifier / label);
* which role each lesion has (declared role, else a label such as ``T1`` or
  ``NT2``, else RECIST 1.1 target selection at baseline, else new);
* which observations form one timepoint (one patient, one date).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from service.domain.advisor import merge_settings
from service.domain.errors import NotEvaluable
from service.domain.model import (
    ClinicalSetting,
    Code,
    History,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    PatientIdentity,
    Timepoint,
    TimepointReport,
    TrackedLesion,
)

# Contract section 3, "Lesion role" fallback: labels such as "T1", "Target 2",
# "NT1", "Non-target 3", "N1", "New 1" (case-insensitive). Order matters: the
# longer prefixes are tried first.
_ROLE_LABELS: tuple[tuple[re.Pattern[str], LesionRole], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), role)
    for pattern, role in (
        (r"^\s*(non[-_ ]?target|nt)\s*[-_#]?\s*\d+\b", LesionRole.NON_TARGET),
        (r"^\s*(target|t)\s*[-_#]?\s*\d+\b", LesionRole.TARGET),
        (r"^\s*(new|n)\s*[-_#]?\s*\d+\b", LesionRole.NEW),
    )
)

# RECIST 1.1 baseline selection (criteria.md 3.1).
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
MIN_MEASURABLE_MM = Decimal(10)
MIN_MEASURABLE_NODE_MM = Decimal(15)  # short axis
MIN_PATHOLOGICAL_NODE_MM = Decimal(10)  # below: a normal node, not a lesion
DEFAULT_SLICE_THICKNESS_MM = Decimal(5)  # contract section 3
NODAL_ORGAN = "lymph node"  # all nodes count as one organ (RWG FAQ)


def role_from_label(label: str | None) -> LesionRole | None:
    """The role a label such as ``T1`` or ``Non-target 3`` names, if any."""
    if not label:
        return None
    for pattern, role in _ROLE_LABELS:
        if pattern.match(label):
            return role
    return None


def minimum_measurable_mm(slice_thickness_mm: Decimal | None) -> Decimal:
    """10 mm, or twice the slice thickness when that is larger (RECIST 1.1, 3.1)."""
    thickness = slice_thickness_mm or DEFAULT_SLICE_THICKNESS_MM
    return max(MIN_MEASURABLE_MM, 2 * thickness)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a patient's history keeps of its reports up to *last*: enough to resume it
    with later reports (:func:`resume_history`) without reading the earlier ones again
    (issue 7, history growth; performance.md 6.4). The baseline timepoint, the lesion
    linker's state, each lesion's first declared role and the traits of its first
    observation, the warnings of merged observations, the merged clinical setting."""

    baseline: Timepoint
    last: date
    by_uid: dict[str, str]
    by_label: dict[str, str]
    identity: dict[str, LesionIdentity]
    first_seen: dict[str, date]
    declared: dict[str, LesionRole]
    traits: dict[str, LesionTraits]
    warnings: tuple[str, ...]
    setting: ClinicalSetting | None


@dataclass(frozen=True, slots=True)
class LesionTraits:
    """What a tracked lesion takes from its first observation."""

    is_nodal: bool
    site: Code | None


def build_history(reports: Iterable[TimepointReport]) -> History:
    """Join a patient's reports into timepoints of tracked lesions.

    Reports are taken in date order, then in the order given (the order they
    were stored), so the result does not depend on delivery order between dates.
    """
    return settled_history(reports)[0]


def settled_history(reports: Iterable[TimepointReport]) -> tuple[History, Settled]:
    """:func:`build_history`, with what resuming it later needs."""
    ordered = sorted(reports, key=lambda report: report.date)
    if not ordered:
        raise NotEvaluable("the patient has no stored measurements")
    builder = _Builder(_LesionLinker(), {}, {}, [], [])
    for report in ordered:
        builder.add(report)
    return builder.finish(ordered[0].patient, ordered[0].date)


def resume_history(
    settled: Settled, reports: Iterable[TimepointReport]
) -> tuple[History, Settled] | None:
    """The history of the reports *settled* was made from and *reports*, all dated after
    its last timepoint (None otherwise, or when there are none). Its timepoints are the
    baseline and those of *reports*; the rest (lesions, roles, warnings, setting) is what
    :func:`settled_history` of all the reports gives."""
    ordered = sorted(reports, key=lambda report: report.date)
    if not ordered or ordered[0].date <= settled.last:
        return None
    builder = _Builder(
        _LesionLinker(
            dict(settled.by_uid),
            dict(settled.by_label),
            dict(settled.identity),
            dict(settled.first_seen),
        ),
        dict(settled.declared),
        dict(settled.traits),
        list(settled.warnings),
        [settled.setting],
    )
    baseline = settled.baseline
    builder.by_date[baseline.date] = dict(baseline.observations)
    builder.preliminary[baseline.date] = baseline.preliminary
    for report in ordered:
        builder.add(report)
    return builder.finish(ordered[0].patient, baseline.date, baseline)


@dataclass
class _Builder:
    """The reports of one patient taken in date order; then the history they make."""

    linker: _LesionLinker
    declared: dict[str, LesionRole]
    traits: dict[str, LesionTraits]
    warnings: list[str]  # of merged observations, in report order
    settings: list[ClinicalSetting | None]
    by_date: defaultdict[date, dict[str, LesionObservation]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    preliminary: defaultdict[date, bool] = field(default_factory=lambda: defaultdict(bool))

    def add(self, report: TimepointReport) -> None:
        self.preliminary[report.date] |= report.source.preliminary
        self.settings.append(report.setting)
        day = self.by_date[report.date]
        for observation in report.lesions:
            key = self.linker.link(observation.identity, report.date)
            earlier = day.get(key)
            day[key] = (
                observation if earlier is None else _merge(earlier, observation, self.warnings)
            )

    def finish(
        self, patient: PatientIdentity, baseline: date, kept: Timepoint | None = None
    ) -> tuple[History, Settled]:
        """The history, with what resuming it needs; *kept* is the baseline timepoint
        of a resumed history (no report added is of its date: it is kept as it is)."""
        for day in sorted(self.by_date):
            for key, observation in self.by_date[day].items():
                self.traits.setdefault(key, LesionTraits(observation.is_nodal, observation.site))
                role = observation.role or role_from_label(observation.identity.tracking_id)
                if role is not None:
                    self.declared.setdefault(key, role)
        role_warnings: list[str] = []
        lesions = _assign_roles(
            self.linker, self.declared, self.traits, self.by_date[baseline], baseline, role_warnings
        )
        timepoints = tuple(
            kept
            if kept is not None and day == baseline
            else Timepoint(
                date=day, observations=self.by_date[day], preliminary=self.preliminary[day]
            )
            for day in sorted(self.by_date)
        )
        setting = merge_settings(self.settings)
        history = History(
            patient=patient,
            lesions=lesions,
            timepoints=timepoints,
            warnings=(*self.warnings, *role_warnings),
            setting=setting,
        )
        linker = self.linker
        settled = Settled(
            baseline=timepoints[0],
            last=timepoints[-1].date,
            by_uid=linker.by_uid,
            by_label=linker.by_label,
            identity=linker.identity,
            first_seen=linker.first_seen,
            declared=self.declared,
            traits=self.traits,
            warnings=tuple(self.warnings),
            setting=setting,
        )
        return history, settled


def _merge(
    earlier: LesionObservation, later: LesionObservation, warnings: list[str]
) -> LesionObservation:
    """One lesion reported by two sources on one date: what each adds is kept; where
    both give the same kind of value, the later source wins (and says so)."""
    later_kinds = {m.kind for m in later.measurements}
    replaced = sorted({m.kind.value for m in earlier.measurements if m.kind in later_kinds})
    if replaced:
        warnings.append(
            f"lesion {later.identity}: {', '.join(replaced)} reported twice on one date; "
            "the later report is used"
        )
    return replace(
        later,
        role=later.role or earlier.role,
        site=later.site or earlier.site,
        is_nodal=later.is_nodal or earlier.is_nodal,
        state=later.state or earlier.state,
        measurements=tuple(m for m in earlier.measurements if m.kind not in later_kinds)
        + later.measurements,
        findings=tuple(dict.fromkeys(earlier.findings + later.findings)),
        merged_into=later.merged_into or earlier.merged_into,
        slice_thickness_mm=later.slice_thickness_mm or earlier.slice_thickness_mm,
    )


@dataclass
class _LesionLinker:
    """Gives each observed identity a stable key (contract section 3)."""

    by_uid: dict[str, str] = field(default_factory=dict)
    by_label: dict[str, str] = field(default_factory=dict)
    identity: dict[str, LesionIdentity] = field(default_factory=dict)
    first_seen: dict[str, date] = field(default_factory=dict)
    _labels_used_on: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))

    def link(self, identity: LesionIdentity, day: date) -> str:
        label = identity.tracking_id.strip().casefold() if identity.tracking_id else None
        key = self.by_uid.get(identity.tracking_uid) if identity.tracking_uid else None
        # A label links only when it is not already used by another lesion on this
        # date: viewers that regenerate UIDs keep their labels, but tool names
        # repeat within one report.
        if key is None and label and label not in self._labels_used_on[day]:
            key = self.by_label.get(label)
        if key is None:
            key = identity.tracking_uid or f"label:{identity.tracking_id}"
            self.identity[key] = identity
            self.first_seen[key] = day
        if identity.tracking_uid:
            self.by_uid.setdefault(identity.tracking_uid, key)
        if label:
            self.by_label.setdefault(label, key)
            self._labels_used_on[day].add(label)
        return key


def _assign_roles(
    linker: _LesionLinker,
    declared: dict[str, LesionRole],
    traits: dict[str, LesionTraits],
    at_baseline: dict[str, LesionObservation],
    baseline: date,
    warnings: list[str],
) -> dict[str, TrackedLesion]:
    roles: dict[str, LesionRole] = {}
    for key, day in linker.first_seen.items():
        role = declared.get(key)
        if day != baseline and role is not None and not role.is_new:
            warnings.append(
                f"lesion {linker.identity[key]} is labelled {role.value} but was first "
                f"seen after baseline ({day}); it is followed as a new lesion"
            )
            role = LesionRole.NEW
        if day != baseline and role is None:
            role = LesionRole.NEW
        if day == baseline and role is not None and role.is_new:
            warnings.append(
                f"lesion {linker.identity[key]} is labelled {role.value} at baseline, where "
                "nothing is new; it is followed as a non-target"
            )
            role = LesionRole.NON_TARGET
        if role is not None:
            roles[key] = role
    unassigned = [key for key in at_baseline if key not in roles]
    if unassigned:
        if any(key in declared for key in at_baseline):
            for key in unassigned:
                roles[key] = LesionRole.NON_TARGET
            warnings.append(
                "baseline lesions without a role are followed as non-targets: "
                + ", ".join(str(linker.identity[key]) for key in unassigned)
            )
        else:
            roles.update(_select_targets(at_baseline, unassigned, linker, warnings))
    return {
        key: TrackedLesion(
            key=key,
            identity=linker.identity[key],
            role=roles[key],
            is_nodal=traits[key].is_nodal,
            site=traits[key].site,
            first_seen=linker.first_seen[key],
        )
        for key in linker.first_seen
    }


def _select_targets(
    observations: dict[str, LesionObservation],
    keys: list[str],
    linker: _LesionLinker,
    warnings: list[str],
) -> dict[str, LesionRole]:
    """RECIST 1.1 target selection: largest measurable, 5 in all, 2 per organ (3.1)."""
    roles: dict[str, LesionRole] = {}
    measurable: list[tuple[Decimal, str]] = []
    for key in keys:
        observation = observations[key]
        size = _baseline_size(observation)
        if observation.is_nodal and (size is None or size < MIN_PATHOLOGICAL_NODE_MM):
            roles[key] = LesionRole.NON_LESION
            warnings.append(
                f"node {linker.identity[key]} is under {MIN_PATHOLOGICAL_NODE_MM} mm "
                f"short axis at baseline: normal, not a lesion"
            )
        elif size is not None and size >= _measurable_threshold(observation):
            measurable.append((size, key))
        else:
            roles[key] = LesionRole.NON_TARGET
    per_organ: dict[str, int] = defaultdict(int)
    chosen: list[str] = []
    for _size, key in sorted(measurable, key=lambda pair: (-pair[0], pair[1])):
        organ = _organ(observations[key], key)
        if len(chosen) < MAX_TARGETS and per_organ[organ] < MAX_TARGETS_PER_ORGAN:
            per_organ[organ] += 1
            chosen.append(key)
            roles[key] = LesionRole.TARGET
        else:
            roles[key] = LesionRole.NON_TARGET
    warnings.append(
        "no lesion roles in the input: targets selected by RECIST 1.1 rules "
        "(largest measurable, 5 in all, 2 per organ): "
        + (", ".join(str(linker.identity[key]) for key in chosen) or "none")
    )
    return roles


def _baseline_size(observation: LesionObservation) -> Decimal | None:
    return observation.short_axis_mm if observation.is_nodal else observation.long_axis_mm


def _measurable_threshold(observation: LesionObservation) -> Decimal:
    if observation.is_nodal:
        return MIN_MEASURABLE_NODE_MM
    return minimum_measurable_mm(observation.slice_thickness_mm)


def _organ(observation: LesionObservation, key: str) -> str:
    if observation.is_nodal:
        return NODAL_ORGAN
    if observation.site is None:
        return f"unknown:{key}"  # no site: never shares an organ with another lesion
    return f"{observation.site.scheme}:{observation.site.value}"
