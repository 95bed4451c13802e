"""Read FHIR R4 measurement Observations and Bundles into :class:`TimepointReport` items.

What is read is contract.md section 3 ("What the service reads"); the shapes accepted are
interop.md section 3 and the input rules of section 6:

* HL7 DICOM-SR IG style (R4 adaptation): a group Observation with ``hasMember`` whose
  members inherit its ``subject``, ``effective[x]``, ``focus`` and ``bodySite``;
  measurement Observations; qualitative evaluations;
* mCODE TumorSize: components LOINC 33728-7 / 33729-5, ``focus`` on a Tumor BodyStructure;
* plain Observations with SNOMED long / short axis codes and ``bodySite``;
* roles (DCM 112016), states (NCIt C96643, as an Observation or a component), slice
  thickness, ``chun-group`` and other findings, in the project code system or standard
  codes; Condition and MedicationStatement / MedicationAdministration for the clinical
  setting;
* a single Observation, or a Bundle of type ``transaction``, ``batch`` or ``collection``;
  BodyStructures contained, in the Bundle (``fullUrl`` or ``Type/id``) or named by
  ``focus.identifier``.

The input is plain parsed JSON (:mod:`.strict_json`) walked with explicit checks, not
fhir.resources models: those cost ~100 times more per request (performance.md 2.3).
Codes are normalised as the SR reader does (:mod:`.sr_codes`): the scheme of a
:class:`Code` is the DICOM coding scheme designator of its FHIR system.

One report per (patient, date); missing subject, date or lesion identity and units that
are not UCUM lengths are refused with :class:`MissingElement` / :class:`InvalidValue`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

import orjson

from service.adapters import fhir_codes as fc, sr_codes as C
from service.domain.errors import InvalidInput, TooLarge, UnsupportedInput
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    ClinicalSetting,
    Code,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    PatientIdentity,
    Primary,
    Provenance,
    QualitativeFinding,
    SourceDocument,
    Therapy,
    TimepointReport,
)

Json = dict[str, Any]

MAX_BUNDLE_ENTRIES: Final = 1000  # reliability.md section 5
BUNDLE_TYPES: Final = frozenset({"transaction", "batch", "collection"})
RESOURCE_TYPES: Final = frozenset(
    {
        "Observation",
        "BodyStructure",
        "Patient",
        "Condition",
        "Medication",
        "MedicationStatement",
        "MedicationAdministration",
    }
)
# A subject that names a Patient only by a reference the input does not resolve.
PATIENT_REFERENCE_SYSTEM: Final = "urn:tumour-response:fhir-patient-reference"
ATC: Final = "http://www.whocc.no/atc"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"

# FHIR code system URI -> DICOM coding scheme designator (contract section 3).
SCHEMES: Final = {
    fc.SNOMED: "SCT",
    fc.DCM: "DCM",
    fc.NCIT: "NCIt",
    fc.LOINC: "LN",
    fc.PROJECT: C.PROJECT_SCHEME,
}

# mCODE TumorSize components (interop.md 3b) read as the SR axes.
TUMOR_SIZE_KINDS: Final[dict[C.Key, MeasurementKind]] = {
    ("33728-7", "LN"): MeasurementKind.LONG_AXIS,
    ("33729-5", "LN"): MeasurementKind.SHORT_AXIS,
}
# Codes of Observations that only hold other items (IG group, mCODE TumorSize).
CONTAINERS: Final[frozenset[C.Key]] = frozenset({C.MEASUREMENT_GROUP, ("21889-1", "LN")})
CHUN_GROUP: Final[C.Key] = ("chun-group", C.PROJECT_SCHEME)
TUMOR_STATE: Final[C.Key] = (C.TUMOR_STATE[0], "NCIT")
_LENGTH_KINDS: Final = frozenset(
    {
        MeasurementKind.LONG_AXIS,
        MeasurementKind.SHORT_AXIS,
        MeasurementKind.DIAMETER,
        MeasurementKind.VIABLE_LONG_AXIS,
    }
)
_SKIPPED_STATUS: Final = frozenset({"registered", "cancelled", "entered-in-error"})

# Primary cancers by SNOMED CT disorder / morphology code (contract section 3, "Clinical
# setting"); other codes leave the primary unknown.
PRIMARIES: Final[dict[str, Primary]] = {
    "363406005": Primary.COLORECTAL,  # Malignant tumor of colon
    "363351006": Primary.COLORECTAL,  # Malignant tumor of rectum
    "93761005": Primary.COLORECTAL,  # Primary malignant neoplasm of colon
    "420120006": Primary.GIST,  # Gastrointestinal stromal tumor
    "25370001": Primary.HCC,  # Hepatocellular carcinoma (morphology)
    "109841003": Primary.HCC,  # Liver cell carcinoma
    "254837009": Primary.BREAST,  # Malignant neoplasm of breast
    "372064008": Primary.BREAST,  # Malignant neoplasm of female breast
    "363418001": Primary.PANCREATIC,  # Malignant tumor of pancreas
    "372003004": Primary.PANCREATIC,  # Primary malignant neoplasm of pancreas
}
# WHO ATC prefixes (2024 index), longest first; other L01/L02 codes are "other".
ATC_THERAPIES: Final[tuple[tuple[str, Therapy], ...]] = (
    ("L01FG", Therapy.ANTI_VEGF),  # VEGF/VEGFR inhibitors (bevacizumab, ramucirumab)
    ("L01XX44", Therapy.ANTI_VEGF),  # aflibercept
    ("L01FF", Therapy.IMMUNOTHERAPY),  # PD-1/PD-L1 inhibitors
    ("L01FX04", Therapy.IMMUNOTHERAPY),  # ipilimumab
    ("L01FX20", Therapy.IMMUNOTHERAPY),  # tremelimumab
    ("L01E", Therapy.TKI),  # protein kinase inhibitors
    ("L01A", Therapy.CHEMOTHERAPY),  # alkylating agents
    ("L01B", Therapy.CHEMOTHERAPY),  # antimetabolites
    ("L01C", Therapy.CHEMOTHERAPY),  # plant alkaloids
    ("L01D", Therapy.CHEMOTHERAPY),  # cytotoxic antibiotics
    ("L01XA", Therapy.CHEMOTHERAPY),  # platinum compounds
    ("L01", Therapy.OTHER),
    ("L02", Therapy.OTHER),
)
# RxNorm ingredients of the drugs the criteria advisor distinguishes.
RXNORM_THERAPIES: Final[dict[str, Therapy]] = {
    "282388": Therapy.TKI,  # imatinib
    "357977": Therapy.TKI,  # sunitinib
    "495881": Therapy.TKI,  # sorafenib
    "1312397": Therapy.TKI,  # regorafenib
    "253337": Therapy.ANTI_VEGF,  # bevacizumab
    "1547545": Therapy.IMMUNOTHERAPY,  # pembrolizumab
    "1597876": Therapy.IMMUNOTHERAPY,  # nivolumab
    "1094833": Therapy.IMMUNOTHERAPY,  # ipilimumab
    "4492": Therapy.CHEMOTHERAPY,  # fluorouracil
    "32592": Therapy.CHEMOTHERAPY,  # oxaliplatin
    "51499": Therapy.CHEMOTHERAPY,  # irinotecan
    "12574": Therapy.CHEMOTHERAPY,  # gemcitabine
}


class MissingElement(UnsupportedInput):
    """A resource lacks what the service needs (subject, date, lesion identity)."""


class InvalidValue(UnsupportedInput):
    """A value the service cannot use (unit that is not UCUM mm/cm, wrong value type)."""


PatientResolver = Callable[[str], PatientIdentity | None]


@dataclass(frozen=True, slots=True)
class FhirInput:
    """What one FHIR body says: its reports, and each input resource's patient.

    ``resources`` are the body's resources in order (the Observation itself, or the
    Bundle's entries); ``subjects`` holds the patient of each, where it has one.
    """

    reports: tuple[TimepointReport, ...]
    resources: tuple[Json, ...]
    subjects: tuple[PatientIdentity | None, ...]


def canonical(document: Json) -> bytes:
    """*document* as canonical JSON (sorted keys, exact decimals): its digest input."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS, default=str)


def resources_of(document: Any) -> list[Json]:
    """The resources of an Observation or a transaction / batch / collection Bundle."""
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise InvalidInput("the body is not a FHIR resource (no resourceType)", "resourceType")
    kind = document["resourceType"]
    if kind == "Observation":
        return [document]
    if kind != "Bundle":
        raise UnsupportedInput(
            f"resource type {kind} is not read here; send an Observation or a Bundle",
            "resourceType",
        )
    bundle_type = document.get("type")
    if not isinstance(bundle_type, str) or bundle_type not in BUNDLE_TYPES:
        raise UnsupportedInput(
            f"Bundle type {bundle_type!r} is not one of {', '.join(sorted(BUNDLE_TYPES))}",
            "Bundle.type",
        )
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput("Bundle.entry is not an array", "Bundle.entry")
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise TooLarge(f"the Bundle has more than {MAX_BUNDLE_ENTRIES} entries", "Bundle.entry")
    found = []
    for index, entry in enumerate(entries):
        path = f"Bundle.entry[{index}].resource"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise InvalidInput("a Bundle entry has no resource", path)
        if resource["resourceType"] not in RESOURCE_TYPES:
            raise UnsupportedInput(
                f"resource type {resource['resourceType']} is not read here; expected one of "
                + ", ".join(sorted(RESOURCE_TYPES)),
                f"{path}.resourceType",
            )
        found.append(resource)
    return found


def read_fhir(
    document: Any,
    *,
    digest: str,
    patient_system: str = DEFAULT_PATIENT_SYSTEM,
    resolve_patient: PatientResolver | None = None,
) -> FhirInput:
    """The reports in a FHIR Observation or Bundle, one per (patient, date).

    *digest* names the document when it has no identifier (contract section 2:
    re-posting the same bytes stores nothing twice). *resolve_patient* maps a
    ``Patient/<id>`` reference the body does not resolve to a known patient.
    """
    resources = resources_of(document)
    reader = _Reader(document, resources, patient_system, resolve_patient)
    subjects = tuple(reader.subject_or_none(index) for index in range(len(resources)))
    return FhirInput(
        reports=reader.reports(_document_uid(document, digest)),
        resources=tuple(resources),
        subjects=subjects,
    )


def _document_uid(document: Json, digest: str) -> str:
    """Bundle.identifier / Observation.identifier as ``system|value``, else the digest."""
    identifier = document.get("identifier")
    if isinstance(identifier, list):
        identifier = identifier[0] if identifier else None
    text = identifier_text(identifier)
    return text or f"sha256:{digest}"


def identifier_text(identifier: Any) -> str | None:
    """An Identifier as ``system|value`` (FHIR token search syntax)."""
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
        return None
    system = identifier.get("system")
    return f"{system if isinstance(system, str) else ''}|{identifier['value']}"


@dataclass
class _Lesion:
    """What the input says about one lesion on one date, merged over Observations."""

    identity: LesionIdentity
    role: LesionRole | None = None
    site: Code | None = None
    state: LesionState | None = None
    merged_into: LesionIdentity | None = None
    measurements: list[Measurement] = field(default_factory=list)
    findings: list[QualitativeFinding] = field(default_factory=list)
    slice_thickness_mm: Decimal | None = None

    def observation(self) -> LesionObservation:
        return LesionObservation(
            identity=self.identity,
            role=self.role,
            site=self.site,
            is_nodal=self.site is not None and C.is_nodal(self.site),
            state=self.state,
            measurements=tuple(self.measurements),
            findings=tuple(self.findings),
            merged_into=self.merged_into,
            slice_thickness_mm=self.slice_thickness_mm,
        )


@dataclass
class _Timepoint:
    lesions: dict[tuple[str, str], _Lesion] = field(default_factory=dict)
    preliminary: bool = False
    study_uid: str | None = None


@dataclass(frozen=True, slots=True)
class _Item:
    """An Observation's own ``code`` + ``value[x]``, or one of its components."""

    concept: Code
    holder: Json
    path: str


class _Reader:
    def __init__(
        self,
        document: Json,
        resources: list[Json],
        patient_system: str,
        resolve_patient: PatientResolver | None,
    ) -> None:
        self._resources = resources
        self._patient_system = patient_system
        self._resolve_patient = resolve_patient
        self._paths = (
            ["Observation"]
            if document.get("resourceType") == "Observation"
            else [f"Bundle.entry[{i}].resource" for i in range(len(resources))]
        )
        self._by_reference: dict[str, Json] = {}
        entries = document.get("entry", []) if document.get("resourceType") == "Bundle" else []
        for resource, entry in zip(resources, entries or [{}], strict=False):
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                self._by_reference[full_url] = resource
        for resource in resources:
            if isinstance(resource.get("id"), str):
                self._by_reference[f"{resource['resourceType']}/{resource['id']}"] = resource
        self._group_of: dict[int, int] = {}
        for index, resource in enumerate(resources):
            for member in _list(resource.get("hasMember")):
                target = self._resolve(member, None)
                if target is not None:
                    self._group_of[id(target)] = index
        self._structure_identities: dict[int, LesionIdentity | None] = {}
        self.warnings: list[str] = []
        self._timepoints: dict[tuple[PatientIdentity, date], _Timepoint] = {}

    # -- references and context ---------------------------------------------------

    def _resolve(self, reference: Any, container: Json | None) -> Json | None:
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return None
        ref = reference["reference"]
        if ref.startswith("#") and container is not None:
            return next(
                (c for c in _list(container.get("contained")) if f"#{c.get('id')}" == ref), None
            )
        found = self._by_reference.get(ref)
        if found is None and "/" in ref:
            found = self._by_reference.get("/".join(ref.rsplit("/", 2)[-2:]))
        return found

    def _group(self, resource: Json) -> Json | None:
        index = self._group_of.get(id(resource))
        return None if index is None else self._resources[index]

    def _inherited(self, resource: Json, name: str) -> Any:
        """An element of *resource*, else of the group Observation that has it as member."""
        value = resource.get(name)
        if value is None and (group := self._group(resource)) is not None:
            return group.get(name)
        return value

    def subject_or_none(self, index: int) -> PatientIdentity | None:
        resource = self._resources[index]
        if resource["resourceType"] == "Patient":
            return self._patient_from_resource(resource)
        subject = self._inherited(resource, "subject") or resource.get("patient")
        return None if subject is None else self._patient(subject, resource, self._paths[index])

    def _patient(self, subject: Any, resource: Json, path: str) -> PatientIdentity:
        if not isinstance(subject, dict):
            raise InvalidInput("subject is not a Reference", f"{path}.subject")
        identity = self._identifier_patient(subject.get("identifier"))
        if identity is not None:
            return identity
        target = self._resolve(subject, resource)
        if target is not None and target.get("resourceType") == "Patient":
            found = self._patient_from_resource(target)
            if found is not None:
                return found
        reference = subject.get("reference")
        if isinstance(reference, str) and reference:
            known = None
            if reference.startswith("Patient/") and self._resolve_patient is not None:
                known = self._resolve_patient(reference.removeprefix("Patient/"))
            return known or PatientIdentity(PATIENT_REFERENCE_SYSTEM, reference)
        raise MissingElement(
            "subject needs an identifier (system and value) or a reference", f"{path}.subject"
        )

    def _patient_from_resource(self, patient: Json) -> PatientIdentity | None:
        identifiers = [self._identifier_patient(i) for i in _list(patient.get("identifier"))]
        usable = [identity for identity in identifiers if identity is not None]
        preferred = [identity for identity in usable if identity.system == self._patient_system]
        return next(iter(preferred or usable), None)

    def _identifier_patient(self, identifier: Any) -> PatientIdentity | None:
        if not isinstance(identifier, dict):
            return None
        value = identifier.get("value")
        if not isinstance(value, str) or not value.strip():
            return None
        system = identifier.get("system")
        return PatientIdentity(
            system if isinstance(system, str) and system else self._patient_system, value.strip()
        )

    def _date(self, resource: Json, path: str) -> date:
        value = self._inherited(resource, "effectiveDateTime")
        if value is None:
            value = self._inherited(resource, "effectiveInstant")
        if value is None:
            raise MissingElement(
                "effectiveDateTime (the imaging date) is required", f"{path}.effectiveDateTime"
            )
        try:
            if not isinstance(value, str) or len(value) < 10:
                raise ValueError
            return date.fromisoformat(value[:10])
        except ValueError:
            raise InvalidValue(
                f"effectiveDateTime {value!r} does not name a day (YYYY-MM-DD)",
                f"{path}.effectiveDateTime",
            ) from None

    def _lesion_identity(self, focus: Any, resource: Json) -> LesionIdentity | None:
        """A lesion named by a focus Reference: its BodyStructure's identifiers, or the
        Reference's own identifier."""
        if not isinstance(focus, dict):
            return None
        target = self._resolve(focus, resource)
        if target is None and (group := self._group(resource)) is not None:
            target = self._resolve(focus, group)
        if target is not None and target.get("resourceType") == "BodyStructure":
            # Read once per BodyStructure, however many Observations name it.
            key = id(target)
            if key not in self._structure_identities:
                self._structure_identities[key] = _identity(_list(target.get("identifier")))
            return self._structure_identities[key]
        return _identity([focus.get("identifier")])

    def _focus_structure(self, focus: Any, resource: Json) -> Json | None:
        target = self._resolve(focus, resource)
        if target is None and (group := self._group(resource)) is not None:
            target = self._resolve(focus, group)
        return (
            target if target is not None and target.get("resourceType") == "BodyStructure" else None
        )

    # -- observations -------------------------------------------------------------

    def reports(self, uid: str) -> tuple[TimepointReport, ...]:
        for index, resource in enumerate(self._resources):
            if resource["resourceType"] == "Observation":
                self._observation(resource, self._paths[index])
        if not self._timepoints:
            raise MissingElement("the input has no lesion Observation this service reads")
        settings = self._settings()
        several = len(self._timepoints) > 1
        found = []
        for (patient, day), timepoint in sorted(
            self._timepoints.items(), key=lambda pair: (pair[0][1], pair[0][0].value)
        ):
            found.append(
                TimepointReport(
                    patient=patient,
                    date=day,
                    source=SourceDocument(
                        uid=f"{uid}#{patient.value}/{day.isoformat()}" if several else uid,
                        kind="fhir",
                        preliminary=timepoint.preliminary,
                    ),
                    lesions=tuple(lesion.observation() for lesion in timepoint.lesions.values()),
                    study_uid=timepoint.study_uid,
                    warnings=tuple(dict.fromkeys(self.warnings)),
                    setting=settings.get(patient, settings.get(None)),
                )
            )
        return tuple(found)

    def _observation(self, resource: Json, path: str) -> None:
        status = resource.get("status")
        if isinstance(status, str) and status in _SKIPPED_STATUS:
            self.warnings.append(f"{path}: Observation with status {status} ignored")
            return
        items = list(_items(resource, path))
        read = [item for item in items if _key(item.concept) not in CONTAINERS]
        known = [item for item in read if _is_lesion_concept(item)]
        if not known and resource.get("hasMember"):
            return  # a group: its members are read with its context
        if not known and not any(_is_finding(item) for item in read):
            names = ", ".join(item.concept.meaning or item.concept.value for item in read)
            self.warnings.append(f"{path}: Observation {names or '(no code)'} ignored")
            return
        lesion, timepoint = self._lesion_of(resource, path, required=bool(known))
        if lesion is None or timepoint is None:
            self.warnings.append(f"{path}: finding without a lesion (focus) ignored")
            return
        timepoint.preliminary |= status == "preliminary"
        timepoint.study_uid = timepoint.study_uid or _study_uid(self._inherited(resource, "partOf"))
        body_site = self._inherited(resource, "bodySite")
        if lesion.site is None and isinstance(body_site, dict):
            lesion.site = _first_code(body_site)
        for item in read:
            self._item(lesion, item, resource)

    def _lesion_of(
        self, resource: Json, path: str, required: bool
    ) -> tuple[_Lesion | None, _Timepoint | None]:
        focus = _list(self._inherited(resource, "focus"))
        identity = self._lesion_identity(focus[0], resource) if focus else None
        if identity is None:
            if required:
                raise MissingElement(
                    "Observation.focus must name the lesion: a BodyStructure with a tracking"
                    " identifier (DCM 112040 / 112039) or a focus identifier",
                    f"{path}.focus",
                )
            return None, None
        subject = self._inherited(resource, "subject")
        if subject is None:
            raise MissingElement("Observation.subject is required", f"{path}.subject")
        patient = self._patient(subject, resource, path)
        day = self._date(resource, path)
        timepoint = self._timepoints.setdefault((patient, day), _Timepoint())
        key = (identity.tracking_uid or "", identity.tracking_id or "")
        lesion = timepoint.lesions.get(key)
        if lesion is None:
            lesion = timepoint.lesions[key] = _Lesion(identity)
            structure = self._focus_structure(focus[0], resource)
            if structure is not None and isinstance(structure.get("location"), dict):
                lesion.site = _first_code(structure["location"])
        if len(focus) > 1:
            lesion.merged_into = self._lesion_identity(focus[1], resource)
        return lesion, timepoint

    def _item(self, lesion: _Lesion, item: _Item, resource: Json) -> None:
        key = _key(item.concept)
        kind = _measurement_kind(key, resource)
        if kind is not None:
            lesion.measurements.append(_measurement(kind, item))
        elif key == C.SLICE_THICKNESS:
            thickness = _length_mm(item)
            if thickness <= 0:
                raise InvalidValue("slice thickness must be positive", f"{item.path}.value")
            lesion.slice_thickness_mm = thickness
        elif key == C.BASELINE_CATEGORY:
            value = _coded_value(item)
            lesion.role = C.ROLES.get(_key(value))
            if lesion.role is None:
                self.warnings.append(f"{item.path}: unknown Baseline Category {value.value!r}")
        elif key == TUMOR_STATE:
            value = _coded_value(item)
            lesion.state = C.state_of(value)
            if lesion.state is None:
                self.warnings.append(f"{item.path}: unknown Tumor State {value.meaning!r}")
        elif key == C.FINDING_SITE:
            lesion.site = _coded_value(item)
        elif key not in C.NOT_FINDINGS:
            finding = _finding(item)
            if finding is not None:
                lesion.findings.append(finding)

    # -- clinical setting ------------------------------------------------------------

    def _settings(self) -> dict[PatientIdentity | None, ClinicalSetting]:
        primaries: dict[PatientIdentity | None, Primary] = {}
        therapies: dict[PatientIdentity | None, set[Therapy]] = {}
        for index, resource in enumerate(self._resources):
            kind = resource["resourceType"]
            if kind == "Condition":
                primary = self._primary(resource, self._paths[index])
                if primary is not None:
                    primaries.setdefault(self.subject_or_none(index), primary)
            elif kind in ("MedicationStatement", "MedicationAdministration"):
                therapy = self._therapy(resource, self._paths[index])
                if therapy is not None:
                    therapies.setdefault(self.subject_or_none(index), set()).add(therapy)
        return {
            patient: ClinicalSetting(
                primary=primaries.get(patient), therapies=frozenset(therapies.get(patient, ()))
            )
            for patient in primaries.keys() | therapies.keys()
        }

    def _primary(self, condition: Json, path: str) -> Primary | None:
        codes = _codes(condition.get("code"))
        for code in codes:
            if code.scheme == "SCT" and code.value in PRIMARIES:
                return PRIMARIES[code.value]
        self.warnings.append(f"{path}: Condition is not a primary cancer this service knows")
        return None

    def _therapy(self, statement: Json, path: str) -> Therapy | None:
        if statement.get("status") in ("entered-in-error", "not-taken", "not-done"):
            return None
        concept = statement.get("medicationCodeableConcept")
        if concept is None:
            medication = self._resolve(statement.get("medicationReference"), statement)
            concept = None if medication is None else medication.get("code")
        for code in _codes(concept):
            if code.scheme == ATC:
                found = next(
                    (t for prefix, t in ATC_THERAPIES if code.value.startswith(prefix)), None
                )
                if found is not None:
                    return found
            elif code.scheme == RXNORM and code.value in RXNORM_THERAPIES:
                return RXNORM_THERAPIES[code.value]
        self.warnings.append(f"{path}: medication is not an anticancer therapy this service knows")
        return None


# -- plain helpers -------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _key(code: Code) -> C.Key:
    return code.value, code.scheme.upper()


def _codes(concept: Any) -> list[Code]:
    """The codings of a CodeableConcept as :class:`Code` items, schemes mapped."""
    if not isinstance(concept, dict):
        return []
    found = []
    for coding in _list(concept.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            system = _text(coding, "system")
            found.append(
                Code(coding["code"], SCHEMES.get(system, system), _text(coding, "display"))
            )
    return found


def _text(element: Json, name: str) -> str:
    value = element.get(name)
    return value if isinstance(value, str) else ""


def _known(code: Code) -> bool:
    key = _key(code)
    return (
        key in C.MEASUREMENT_KINDS
        or key in TUMOR_SIZE_KINDS
        or key in CONTAINERS
        or key in C.NOT_FINDINGS
        or key in (C.ATTENUATION, C.SLICE_THICKNESS, CHUN_GROUP, TUMOR_STATE)
    )


def _first_code(concept: Json) -> Code | None:
    """The coding this service knows, else the first one, else the text."""
    codes = _codes(concept)
    if codes:
        return next((code for code in codes if _known(code)), codes[0])
    text = concept.get("text") if isinstance(concept, dict) else None
    return Code(text, "", text) if isinstance(text, str) and text else None


def _items(resource: Json, path: str) -> Iterator[_Item]:
    concept = _first_code(resource.get("code") or {})
    if concept is not None:
        yield _Item(concept, resource, path)
    for index, component in enumerate(_list(resource.get("component"))):
        if isinstance(component, dict):
            code = _first_code(component.get("code") or {})
            if code is not None:
                yield _Item(code, component, f"{path}.component[{index}]")


def _measurement_kind(key: C.Key, resource: Json) -> MeasurementKind | None:
    if key == C.ATTENUATION:
        method = _codes(resource.get("method"))
        is_mean = not method or any(_key(code) == C.MEAN for code in method)
        return MeasurementKind.MEAN_ATTENUATION if is_mean else None
    return C.MEASUREMENT_KINDS.get(key) or TUMOR_SIZE_KINDS.get(key)


def _is_lesion_concept(item: _Item) -> bool:
    key = _key(item.concept)
    return (
        key in C.MEASUREMENT_KINDS
        or key in TUMOR_SIZE_KINDS
        or key
        in (C.ATTENUATION, C.SLICE_THICKNESS, C.BASELINE_CATEGORY, TUMOR_STATE, C.FINDING_SITE)
    )


def _is_finding(item: _Item) -> bool:
    holder = item.holder
    has_value = any(
        name in holder for name in ("valueCodeableConcept", "valueString", "valueInteger")
    )
    return has_value and _key(item.concept) not in C.NOT_FINDINGS


def _quantity(item: _Item) -> tuple[Decimal, str]:
    quantity = item.holder.get("valueQuantity")
    expression = f"{item.path}.valueQuantity"
    if not isinstance(quantity, dict):
        raise MissingElement(
            f"{item.concept.meaning or item.concept.value} needs a valueQuantity", expression
        )
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidValue("valueQuantity.value is not a number", f"{expression}.value")
    system = quantity.get("system")
    if system is not None and system != fc.UCUM:
        raise InvalidValue(f"unit system {system!r} is not UCUM ({fc.UCUM})", expression)
    unit = quantity.get("code", quantity.get("unit"))
    return Decimal(value), unit if isinstance(unit, str) else ""


def _length_mm(item: _Item) -> Decimal:
    value, unit = _quantity(item)
    factor = C.MM_PER_UNIT.get(unit)
    if factor is None:
        raise InvalidValue(
            f"unit {unit!r} of {item.concept.meaning or item.concept.value} is not a UCUM"
            " length (mm, cm)",
            f"{item.path}.valueQuantity.code",
        )
    return value * factor


def _measurement(kind: MeasurementKind, item: _Item) -> Measurement:
    if kind in _LENGTH_KINDS:
        value = _length_mm(item)
    else:
        value, unit = _quantity(item)
        if unit != C.HOUNSFIELD:
            raise InvalidValue(
                f"unit {unit!r} of mean attenuation is not {C.HOUNSFIELD}",
                f"{item.path}.valueQuantity.code",
            )
    try:
        return Measurement(kind, value, Provenance(path=item.path))
    except InvalidInput as exc:
        raise InvalidInput(str(exc), f"{item.path}.valueQuantity") from exc


def _coded_value(item: _Item) -> Code:
    """A valueCodeableConcept (its text when uncoded) or valueString as a Code."""
    concept = item.holder.get("valueCodeableConcept")
    code = _first_code(concept) if isinstance(concept, dict) else None
    text = item.holder.get("valueString")
    if code is None and isinstance(text, str) and text.strip():
        code = Code(text.strip(), "", text.strip())
    if code is None:
        raise MissingElement(
            f"{item.concept.meaning or item.concept.value} needs a valueCodeableConcept",
            f"{item.path}.valueCodeableConcept",
        )
    if not code.meaning and isinstance(concept, dict) and isinstance(concept.get("text"), str):
        code = Code(code.value, code.scheme, concept["text"])
    return code


def _finding(item: _Item) -> QualitativeFinding | None:
    holder = item.holder
    integer = holder.get("valueInteger")
    if isinstance(integer, int) and not isinstance(integer, bool):
        return C.coded_finding(item.concept, Code(str(integer), C.PROJECT_SCHEME))
    text = holder.get("valueString")
    if isinstance(text, str) and text.strip():
        return QualitativeFinding(item.concept, text.strip())
    if "valueCodeableConcept" in holder:
        value = _coded_value(item)
        if not value.scheme:
            return QualitativeFinding(item.concept, value.meaning)
        return C.coded_finding(item.concept, value)
    return None


def _identity(identifiers: list[Any]) -> LesionIdentity | None:
    """Tracking UID (DCM 112040, or a ``urn:dicom:uid`` value) and Tracking Identifier
    (DCM 112039, else the first plain identifier)."""
    uid: str | None = None
    label: str | None = None
    plain: str | None = None
    for identifier in identifiers:
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            continue
        value = identifier["value"].strip()
        types = {_key(code) for code in _codes(identifier.get("type"))}
        if C.TRACKING_UID in types or identifier.get("system") == fc.DICOM_UID_SYSTEM:
            uid = uid or value.removeprefix("urn:oid:")
        elif C.TRACKING_ID in types:
            label = label or value
        else:
            plain = plain or value
    label = label or plain
    if not (uid or label):
        return None
    return LesionIdentity(tracking_uid=uid or None, tracking_id=label or None)


def _study_uid(part_of: Any) -> str | None:
    """The Study Instance UID of a ``partOf`` identifier (IG: DCM 110180, urn:dicom:uid)."""
    for part in _list(part_of):
        identifier = part.get("identifier") if isinstance(part, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == fc.DICOM_UID_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str):
                return value.removeprefix("urn:oid:")
    return None
