"""tumour-response: tumour response assessment from DICOM SR and FHIR measurements."""

__version__ = "0.1.0"
