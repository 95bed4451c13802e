"""Code systems and codes the FHIR writer emits (contract section 4; criteria.md 10)."""

from __future__ import annotations

from service.domain.model import Response

NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PROJECT = "http://tumour-response.org/fhir/CodeSystem/tr"
ASSESSMENT_IDENTIFIER_SYSTEM = "http://tumour-response.org/fhir/NamingSystem/assessment"
DICOM_UID_SYSTEM = "urn:dicom:uid"
LESION_LABEL_SYSTEM = "http://tumour-response.org/fhir/NamingSystem/lesion-label"
MCODE_DISEASE_STATUS = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status"
)
MCODE_EVIDENCE_TYPE = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-disease-status-evidence-type"
)
MCODE_TUMOR_SIZE = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-size"
MCODE_TUMOR = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor"

# Criterion -> (NCIt code, display) for Observation.method (contract section 4).
CRITERION_METHOD: dict[str, tuple[str, str]] = {
    "recist-1.1": ("C124415", "RECIST 1.1"),
    "irecist": ("C136711", "iRECIST"),
    "choi": ("C122394", "Choi criteria"),
    "mrecist": ("C126032", "mRECIST"),
    "chun": ("C126048", "Chun morphologic criteria (JAMA 2009)"),
    "mchoi": ("C126042", "Modified Choi"),
}

# Response categories, NCIt (CDISC C96785), contract section 4.
RESPONSE_CODE: dict[Response, tuple[str, str]] = {
    Response.CR: ("C4870", "Complete Response"),
    Response.PR: ("C18058", "Partial Response"),
    Response.SD: ("C18213", "Stable Disease"),
    Response.PD: ("C35571", "Progressive Disease"),
    Response.NE: ("C62222", "Not Evaluable"),
    Response.NON_CR_NON_PD: ("C96700", "Non-CR/Non-PD"),
    Response.ICR: ("C142357", "iCR"),
    Response.IPR: ("C142358", "iPR"),
    Response.ISD: ("C142359", "iSD"),
    Response.IUPD: ("C142360", "iUPD"),
    Response.ICPD: ("C142356", "iCPD"),
    Response.NON_ICR_NON_IUPD: ("C142361", "Non-iCR/Non-iUPD"),
    Response.OPTIMAL_MORPHOLOGIC: ("C123601", "Optimal Morphologic Response"),
    Response.PARTIAL_MORPHOLOGIC: ("C123602", "Partial Morphologic Response"),
    Response.ABSENT_MORPHOLOGIC: ("C123571", "Absent Morphologic Response"),
}

# Result Observation codes, NCIt (CDISC C96782 test codes and TR derived results).
OVERALL_RESPONSE = ("C96613", "Overall Response")
MORPHOLOGIC_RESPONSE = ("C123625", "Morphologic Response")
TARGET_RESPONSE = ("C94534", "Target Response")
NON_TARGET_RESPONSE = ("C94535", "Non-target Response")
NEW_LESION_PROGRESSION = ("C103420", "New Lesion Progression")
BEST_OVERALL_RESPONSE = ("C94536", "Best Overall Response")
SUM_OF_DIAMETERS = ("C96631", "Sum of Diameters")
PCT_FROM_BASELINE = ("C112370", "Percent Change from Baseline in Sum of Diameters")
PCT_FROM_NADIR = ("C112373", "Percent Change from Nadir in Sum of Diameters")
ABS_FROM_NADIR = ("C112218", "Absolute Change from Nadir in Sum of Diameters")

# mCODE CancerDiseaseStatus value (criteria.md 10.2, an [I] mapping).
DISEASE_STATUS: dict[Response, tuple[str, str]] = {
    Response.CR: ("268910001", "Patient's condition improved (finding)"),
    Response.PR: ("268910001", "Patient's condition improved (finding)"),
    Response.SD: ("359746009", "Patient's condition stable (finding)"),
    Response.NON_CR_NON_PD: ("359746009", "Patient's condition stable (finding)"),
    Response.PD: ("271299001", "Patient's condition worsened (finding)"),
    Response.NE: ("709137006", "Patient condition undetermined (finding)"),
}
