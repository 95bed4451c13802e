"""The DICOM context of a received SR: what an SR written back about it must copy.

An assessment SR (:mod:`service.adapters.sr_writer`) belongs to the same patient and
imaging study as the measurements it assesses, so its Patient and General Study
modules (PS3.3 C.7.1.1, C.7.2.1) are copied exactly from the received SR, and its
evidence (PS3.3 C.17.2.3, SR Document General module: Current Requested Procedure
Evidence / Pertinent Other Evidence) lists the received SR and the images it
references (interop.md 1.8, 2.3).

The context is a JSON-ready ``dict`` stored with the document
(``document.dicom_context``). It holds identifying patient data: it is never logged.

:data:`ASSESSMENT_DEVICE_UID` closes the loop: every SR we write names it as its
Device Observer UID (TID 1004 row 1, 121012 DCM), and the reader refuses an SR that
does, so an assessment sent back to us is never re-ingested as measurements.
"""

from __future__ import annotations

from typing import Any, Final

from pydicom.dataset import Dataset

from service.adapters import sr_fastwalk

# The Device Observer UID of the SRs this service writes (a fixed 2.25 UUID-derived UID).
ASSESSMENT_DEVICE_UID: Final = "2.25.271431006484740252649559278296748287680"

# Patient and General Study module attributes copied into an SR we write.
PATIENT_STUDY_KEYWORDS: Final = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
_EVIDENCE_SEQUENCES: Final = (
    "CurrentRequestedProcedureEvidenceSequence",
    "PertinentOtherEvidenceSequence",
)
_PROCEDURE_REPORTED: Final = ("121058", "DCM")
_CODE_KEYWORDS: Final = ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")


def extract(ds: Dataset) -> dict[str, Any]:
    """The context of the SR *ds*: attributes, evidence, procedure reported.

    ``attributes`` maps each keyword of :data:`PATIENT_STUDY_KEYWORDS` present in
    *ds* to its value as text; ``evidence`` lists ``{study, series, sop, sop_class}``
    of the SR itself followed by every instance its evidence sequences name;
    ``procedure_reported`` holds the ``[value, scheme, meaning]`` of the TID 1500
    row 4 codes.
    """
    header = sr_fastwalk.Header(ds)
    attributes = {
        keyword: str(header.get(keyword) or "")
        for keyword in PATIENT_STUDY_KEYWORDS
        if keyword in header
    }
    sop, sop_class = header.get("SOPInstanceUID"), header.get("SOPClassUID")
    evidence = [_reference(header, header, sop, sop_class)]
    for keyword in _EVIDENCE_SEQUENCES:
        for study in header.get(keyword) or ():
            for series in study.get("ReferencedSeriesSequence") or ():
                evidence.extend(
                    _reference(
                        study,
                        series,
                        sop.get("ReferencedSOPInstanceUID"),
                        sop.get("ReferencedSOPClassUID"),
                    )
                    for sop in series.get("ReferencedSOPSequence") or ()
                )
    complete = [ref for ref in evidence if all(ref.values())]
    return {
        "attributes": attributes,
        "evidence": list({ref["sop"]: ref for ref in complete}.values()),
        "procedure_reported": _procedures(header),
    }


def _reference(
    study: sr_fastwalk.ContentItem, series: sr_fastwalk.ContentItem, sop: object, sop_class: object
) -> dict[str, str]:
    """One evidence entry; an empty value marks an incomplete reference."""
    return {
        "study": str(study.get("StudyInstanceUID") or ""),
        "series": str(series.get("SeriesInstanceUID") or ""),
        "sop": str(sop or ""),
        "sop_class": str(sop_class or ""),
    }


def _procedures(ds: sr_fastwalk.ContentItem) -> list[list[str]]:
    found = []
    for item in ds.get("ContentSequence") or ():
        names, values = item.get("ConceptNameCodeSequence"), item.get("ConceptCodeSequence")
        if not (names and values):
            continue
        name = names[0]
        concept = (str(name.get("CodeValue")), str(name.get("CodingSchemeDesignator")))
        code = [str(values[0].get(k) or "") for k in _CODE_KEYWORDS]
        if concept == _PROCEDURE_REPORTED and all(code):
            found.append(code)
    return found
