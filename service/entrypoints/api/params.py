"""The query parameters of POST /assessments (contract section 2), as one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query

from service.domain.model import AssessmentParameters, ClinicalSetting, Primary, Therapy

_DAYS = {"ge": 0, "le": 3650}


@dataclass(frozen=True, slots=True)
class AssessmentQuery:
    """What the caller asked for: criteria, protocol parameters, clinical setting."""

    criteria: list[str]
    params: AssessmentParameters
    setting: ClinicalSetting | None


async def assessment_query(
    criteria: Annotated[
        list[str] | None,
        Query(
            description="recist-1.1, irecist, choi, mchoi, chun, mrecist (repeatable); "
            "default: the advisor's choice for the clinical setting; recist-1.1 always"
        ),
    ] = None,
    confirmation: Annotated[
        bool, Query(description="CR/PR need confirmation for the best overall response")
    ] = False,
    confirm_min_days: Annotated[
        int, Query(ge=1, le=3650, description="minimum days between response and confirmation")
    ] = 28,
    sd_min_days: Annotated[
        int, Query(**_DAYS, description="minimum days from baseline for SD to count")
    ] = 42,
    pr_persistence: Annotated[
        bool, Query(description="a PR stays PR until PD or CR (RECIST Working Group FAQ)")
    ] = True,
    choi_hu_aggregation: Annotated[
        Literal["mean", "size-weighted"],
        Query(description="unweighted mean of per-lesion mean HU, or size-weighted"),
    ] = "mean",
    choi_size_reference: Annotated[
        Literal["baseline", "nadir"], Query(description="size reference for Choi PD")
    ] = "baseline",
    chun_patient_policy: Annotated[
        Literal["worst", "majority"],
        Query(description="worst: every metastasis must respond; or the majority"),
    ] = "worst",
    mrecist_pd_5mm: Annotated[
        bool, Query(description="mRECIST PD also needs +5 mm absolute")
    ] = False,
    icpd_window_days: Annotated[
        int, Query(**_DAYS, description="latest day after iUPD a scan can confirm it")
    ] = 56,
    primary: Annotated[
        Primary | None, Query(description="primary cancer, when no Condition is sent")
    ] = None,
    therapy: Annotated[
        list[Therapy] | None,
        Query(description="therapy class (repeatable), when no Medication* is sent"),
    ] = None,
) -> AssessmentQuery:
    return AssessmentQuery(
        criteria=criteria or [],
        params=AssessmentParameters(
            confirmation=confirmation,
            confirm_min_days=confirm_min_days,
            sd_min_days=sd_min_days,
            pr_persistence=pr_persistence,
            choi_hu_aggregation=choi_hu_aggregation,
            choi_size_reference=choi_size_reference,
            chun_patient_policy=chun_patient_policy,
            mrecist_pd_5mm=mrecist_pd_5mm,
            icpd_window_days=icpd_window_days,
        ),
        setting=ClinicalSetting.chosen(primary, therapy or ()),
    )


AssessmentQueryDep = Annotated[AssessmentQuery, Depends(assessment_query)]
