"""TID 1500 reports from real producers round-trip to the same measurements and verdict.

Each producer writes the same two timepoints (issue 4): baseline liver targets T1 60 mm
and T2 40 mm, follow-up 42 mm and 28 mm. Our reader must give those numbers for the
same lesions, and posting both SRs to the app must give RECIST 1.1 PR with a sum of
diameters of 70 mm. Producers (interop.md 1.3, 2.3):

* highdicom, through :func:`tests.sr_factory.make_sr`;
* DCMTK ``xml2dsr``, from XML written here in the format of DCMTK's ``dsr2xml``;
* dcmqi's ``tid1500writer`` as 3D Slicer's QuantitativeReporting writes: TID 1411
  volumetric groups over the segments of a DICOM SEG made by ``itkimage2segimage`` from
  a synthetic CT series (:mod:`tests.dcmqi_factory`);
* dcmjs as OHIF v3 exports: ``tests/tools/dcmjs_sr.js`` runs @cornerstonejs/adapters
  ``MeasurementReport.generateReport`` over Length annotations labelled ``T1`` / ``T2``.
  It names every group by the tool tag and a fresh Tracking UID at each export, and
  puts the label in a TEXT ``(121106, DCM) Comment``: the reader must follow the lesions
  by those labels (contract section 3, "Lesion identity").

A producer whose tool is not installed skips with the reason (``bash
tests/tools/install.sh`` installs them all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from service.adapters import sr_reader
from service.domain.model import Coordinates
from tests import dcmqi_factory
from tests.api import conftest as api
from tests.sr_factory import REGION_2D, REGION_3D, LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

# The in-process app of the API tests (SQLite under tmp_path, lifespan entered).
anyio_backend, settings, app, client = api.anyio_backend, api.settings, api.app, api.client

FRAME = "1.2.826.0.1.3680043.2.1125.1"  # the Frame of Reference of highdicom's SCOORD3D
# day -> lesion -> long axis (mm)
TIMEPOINTS: dict[str, dict[str, int]] = {
    "20240101": {"T1": 60, "T2": 40},
    "20240301": {"T1": 42, "T2": 28},
}


async def assert_round_trip(client: httpx.AsyncClient, srs: dict[str, bytes]) -> None:
    """The reader gives the produced numbers; the app gives RECIST PR, sum 70 mm."""
    for day, data in srs.items():
        report = sr_reader.read_sr(sr_reader.parse_dicom(data))
        assert report.date.strftime("%Y%m%d") == day
        measured = {str(lesion.identity): lesion.long_axis_mm for lesion in report.lesions}
        assert measured == {name: Decimal(value) for name, value in TIMEPOINTS[day].items()}
    answers = [
        await client.post(
            "/assessments", content=srs[day], headers={"Content-Type": "application/dicom"}
        )
        for day in sorted(srs)
    ]
    assert [answer.status_code for answer in answers] == [200, 200], answers[-1].text
    bundle = answers[-1].json()
    assert _value(bundle, "C96613")["valueCodeableConcept"]["coding"][0]["code"] == "C18058"
    assert _value(bundle, "C96631")["valueQuantity"]["value"] == 70


def _value(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    """The RECIST 1.1 Observation of *code* in *bundle*."""
    return next(
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        and entry["resource"]["code"]["coding"][0]["code"] == code
        and entry["resource"].get("method", {}).get("coding", [{}])[0].get("code") == "C124415"
    )


def _uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=list(parts)))


def line(index: int, length: int) -> tuple[float, ...]:
    """The (column, row) points of lesion *index*'s measured line, as
    ``tests/tools/dcmjs_sr.js`` draws it: from (10, 10 + 20 index), *length* long."""
    row = 10.0 + 20 * index
    return (10.0, row, 10.0 + length, row)


def assert_num_coordinates(data: bytes, day: str, image_uid: str) -> None:
    """Each long axis keeps the POLYLINE it was INFERRED FROM (TID 300 / TID 320) and the
    image that line was SELECTED FROM, in its provenance."""
    report = sr_reader.read_sr(sr_reader.parse_dicom(data))
    expected = [
        (name, (Coordinates("POLYLINE", line(index, length), referenced_sop_uid=image_uid),))
        for index, (name, length) in enumerate(TIMEPOINTS[day].items())
    ]
    found = [
        (str(lesion.identity), lesion.measurements[0].provenance.coordinates)
        for lesion in report.lesions
    ]
    assert found == expected


async def test_highdicom(client: httpx.AsyncClient) -> None:
    srs = {
        day: sr_bytes(
            make_sr(
                patient_id="PAT-HD",
                study_date=day,
                lesions=[
                    LesionSpec(
                        name, long_axis_mm=value, role="target", frame_of_reference_uid=frame
                    )
                    for (name, value), frame in zip(lesions.items(), (None, FRAME), strict=True)
                ],
            )
        )
        for day, lesions in TIMEPOINTS.items()
    }
    for day, data in srs.items():  # TID 1410 regions: T1 a SCOORD, T2 a SCOORD3D
        report = sr_reader.read_sr(sr_reader.parse_dicom(data))
        image = str(generate_uid(entropy_srcs=["ct-image", "PAT-HD", day]))  # make_sr's stub CT
        assert [lesion.measurements[0].provenance.coordinates for lesion in report.lesions] == [
            (Coordinates("POLYLINE", _flat(REGION_2D), referenced_sop_uid=image),),
            (Coordinates("POLYLINE", _flat(REGION_3D), frame_of_reference_uid=FRAME),),
        ]
    await assert_round_trip(client, srs)


def _flat(points: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    return tuple(value for point in points for value in point)


# -- DCMTK xml2dsr --------------------------------------------------------------------


def _concept(value: str, scheme: str, meaning: str) -> str:
    return (
        f"<concept><value>{value}</value><scheme><designator>{scheme}</designator></scheme>"
        f"<meaning>{meaning}</meaning></concept>"
    )


def _code_item(relationship: str, name: tuple[str, str, str], value: tuple[str, str, str]) -> str:
    coded = (
        f"<value>{value[0]}</value><scheme><designator>{value[1]}</designator></scheme>"
        f"<meaning>{value[2]}</meaning>"
    )
    return f"<code><relationship>{relationship}</relationship>{_concept(*name)}{coded}</code>"


def _xml_group(patient_id: str, day: str, index: int, name: str, long_axis: int) -> str:
    """One TID 1501 group: tracking, finding, site, RECIST 1.1, target, long axis
    INFERRED FROM the POLYLINE of :func:`line` on a CT image (TID 300, TID 320)."""
    points = line(index, long_axis)
    data = ",".join(f"{x:g}/{y:g}" for x, y in zip(points[::2], points[1::2], strict=True))
    return f"""
<container flag="SEPARATE"><template><resource>DCMR</resource><id>1501</id></template>
<relationship>CONTAINS</relationship>{_concept("125007", "DCM", "Measurement Group")}
<text><relationship>HAS OBS CONTEXT</relationship>{_concept("112039", "DCM", "Tracking Identifier")}
<value>{name}</value></text>
<uidref><relationship>HAS OBS CONTEXT</relationship>
{_concept("112040", "DCM", "Tracking Unique Identifier")}
<value>{_uid("dcmtk-tracking", patient_id, name)}</value></uidref>
{_code_item("CONTAINS", ("121071", "DCM", "Finding"), ("52988006", "SCT", "Lesion"))}
{_code_item("HAS CONCEPT MOD", ("363698007", "SCT", "Finding Site"), ("10200004", "SCT", "Liver"))}
{
        _code_item(
            "HAS CONCEPT MOD",
            ("370129005", "SCT", "Measurement Method"),
            ("126081", "DCM", "RECIST 1.1"),
        )
    }
<num><relationship>CONTAINS</relationship>{_concept("103339001", "SCT", "Long Axis")}
<value>{long_axis}</value><unit><value>mm</value><scheme><designator>UCUM</designator></scheme>
<meaning>millimeter</meaning></unit>
<scoord type="POLYLINE"><relationship>INFERRED FROM</relationship>
<image><relationship>SELECTED FROM</relationship><value>
<sopclass uid="1.2.840.10008.5.1.4.1.1.2">CTImageStorage</sopclass>
<instance uid="{_uid("dcmtk-image", patient_id, day)}"/></value></image>
<data>{data}</data></scoord></num>
{
        _code_item(
            "CONTAINS",
            ("112016", "DCM", "Baseline Category"),
            ("112074", "DCM", "Target Lesion at Baseline"),
        )
    }
</container>"""


def dsr_xml(patient_id: str, day: str, lesions: dict[str, int]) -> str:
    """A TID 1500 Enhanced SR in the XML format of DCMTK's dsr2xml / xml2dsr."""
    iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    groups = "".join(
        _xml_group(patient_id, day, index, name, value)
        for index, (name, value) in enumerate(lesions.items())
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<report type="Enhanced SR">
<sopclass uid="1.2.840.10008.5.1.4.1.1.88.22">EnhancedSRStorage</sopclass>
<modality>SR</modality>
<manufacturer>DCMTK xml2dsr</manufacturer>
<patient><id>{patient_id}</id><name><first>Ann</first><last>Test</last></name>
<birthday><date>1960-01-01</date></birthday><sex>F</sex></patient>
<study uid="{_uid("dcmtk-study", patient_id, day)}"><id>1</id><date>{iso}</date>
<time>12:00:00</time><accession><number>A{day}</number></accession></study>
<series uid="{_uid("dcmtk-series", patient_id, day)}"><number>1</number></series>
<instance uid="{_uid("dcmtk-sr", patient_id, day)}"><number>1</number></instance>
<document><preliminary flag="FINAL"/><completion flag="COMPLETE"></completion>
<verification flag="UNVERIFIED"></verification>
<content><date>{iso}</date><time>12:00:00</time>
<container flag="SEPARATE"><template><resource>DCMR</resource><id>1500</id></template>
{_concept("126000", "DCM", "Imaging Measurement Report")}
{
        _code_item(
            "HAS CONCEPT MOD",
            ("121049", "DCM", "Language of Content Item and Descendants"),
            ("eng", "RFC5646", "English"),
        )
    }
{_code_item("HAS OBS CONTEXT", ("121005", "DCM", "Observer Type"), ("121006", "DCM", "Person"))}
<pname><relationship>HAS OBS CONTEXT</relationship>
{_concept("121008", "DCM", "Person Observer Name")}
<value><first>Rad</first><last>Reader</last></value></pname>
{
        _code_item(
            "HAS CONCEPT MOD",
            ("121058", "DCM", "Procedure reported"),
            ("25045-6", "LN", "CT unspecified body region"),
        )
    }
<container flag="SEPARATE"><relationship>CONTAINS</relationship>
{_concept("126010", "DCM", "Imaging Measurements")}{groups}
</container>
</container></content></document></report>
"""


@pytest.mark.skipif(shutil.which("xml2dsr") is None, reason="DCMTK xml2dsr is not installed")
async def test_dcmtk_xml2dsr(client: httpx.AsyncClient, tmp_path: Path) -> None:
    srs = {}
    for day, lesions in TIMEPOINTS.items():
        source, target = tmp_path / f"{day}.xml", tmp_path / f"{day}.dcm"
        source.write_text(dsr_xml("PAT-DCMTK", day, lesions))
        result = subprocess.run(
            ["xml2dsr", str(source), str(target)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0 and not result.stderr, result.stderr
        dump = subprocess.run(
            ["dsrdump", str(target)], capture_output=True, text=True, timeout=60, check=False
        )
        assert dump.returncode == 0 and "E:" not in dump.stderr, dump.stderr
        srs[day] = target.read_bytes()
        assert_num_coordinates(srs[day], day, _uid("dcmtk-image", "PAT-DCMTK", day))
    await assert_round_trip(client, srs)


# -- dcmjs / @cornerstonejs/adapters (OHIF v3) ------------------------------------------

TOOLS = Path(__file__).resolve().parents[1] / "tools"
NODE_MODULES = TOOLS / "node_modules"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "@cornerstonejs" / "adapters").is_dir(),
    reason="node or tests/tools/node_modules (dcmjs, @cornerstonejs/adapters) is missing",
)
async def test_dcmjs_as_ohif_v3_exports(client: httpx.AsyncClient, tmp_path: Path) -> None:
    srs = {}
    for day, lesions in TIMEPOINTS.items():
        spec, target = tmp_path / f"{day}.json", tmp_path / f"{day}.dcm"
        spec.write_text(
            json.dumps(
                {
                    "patientId": "PAT-OHIF",
                    "studyDate": day,
                    "studyUid": _uid("ohif-study", day),
                    "seriesUid": _uid("ohif-series", day),
                    "imageUid": _uid("ohif-image", day),
                    "lesions": [{"label": k, "length": v} for k, v in lesions.items()],
                }
            )
        )
        result = subprocess.run(
            ["node", str(TOOLS / "dcmjs_sr.js"), str(spec), str(target)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        )
        assert result.returncode == 0, result.stderr
        srs[day] = target.read_bytes()
        assert_num_coordinates(srs[day], day, _uid("ohif-image", day))
    report = sr_reader.read_sr(sr_reader.parse_dicom(srs["20240101"]))
    assert any("viewer tool tag" in warning for warning in report.warnings)
    assert all(lesion.findings == () for lesion in report.lesions)  # the label is no finding
    await assert_round_trip(client, srs)


# -- dcmqi tid1500writer (3D Slicer QuantitativeReporting) -------------------------------


@pytest.fixture(scope="session")
def dcmqi_srs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both timepoints written once per session: the dcmqi tools take seconds."""
    missing = [
        name for name in ("itkimage2segimage", "tid1500writer") if dcmqi_factory.tool(name) is None
    ]
    if missing:
        pytest.skip(f"dcmqi {', '.join(missing)} is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("dcmqi")
    return {
        day: dcmqi_factory.dcmqi_sr(root / day, "PAT-DCMQI", day, str(number), lesions)
        for number, (day, lesions) in enumerate(sorted(TIMEPOINTS.items()), start=1)
    }


async def test_dcmqi_tid1500writer(client: httpx.AsyncClient, dcmqi_srs: dict[str, Path]) -> None:
    srs = {day: path.read_bytes() for day, path in dcmqi_srs.items()}
    reports = {day: sr_reader.read_sr(sr_reader.parse_dicom(data)) for day, data in srs.items()}
    tracking = [
        {str(lesion.identity): lesion.identity.tracking_uid for lesion in report.lesions}
        for report in reports.values()
    ]
    assert tracking[0] == tracking[1] and all(tracking[0].values())  # UIDs kept over time
    assert [report.label for report in reports.values()] == ["1", "2"]  # TID 1502 Time Point
    for day, report in reports.items():
        assert report.warnings == ()
        seg_uids = {
            lesion.measurements[0].provenance.referenced_sop_uid for lesion in report.lesions
        }
        seg = dcmread(dcmqi_srs[day].with_name("seg.dcm"), stop_before_pixels=True)
        assert seg_uids == {seg.SOPInstanceUID}  # the Referenced Segment's SEG
        assert all(lesion.site and lesion.site.value == "10200004" for lesion in report.lesions)
        # SEG-based TID 1411 groups: the segment is the region, no coordinates
        assert all(
            m.provenance.coordinates == () for lesion in report.lesions for m in lesion.measurements
        )
    await assert_round_trip(client, srs)
