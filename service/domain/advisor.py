"""Which criteria fit a clinical setting (ESGAR/ESR Essentials 2025; criteria.md 1).

RECIST 1.1 is always recommended. Setting-specific criteria validated on CT come
beside it: Choi for GIST on tyrosine-kinase inhibitors, Chun for colorectal liver
metastases on anti-VEGF therapy, iRECIST for immunotherapy, mRECIST for HCC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.domain.model import ClinicalSetting, Primary, Therapy


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A criterion to apply and why."""

    criterion: str
    reason: str


ALWAYS = Recommendation("recist-1.1", "the standard in every setting (ESGAR/ESR Essentials 2025)")


def recommend(setting: ClinicalSetting | None) -> tuple[Recommendation, ...]:
    """The criteria for *setting*, RECIST 1.1 first."""
    found = [ALWAYS]
    if setting is None:
        return tuple(found)
    primary, therapies = setting.primary, setting.therapies
    if primary is Primary.GIST and Therapy.TKI in therapies:
        found.append(
            Recommendation(
                "choi",
                "GIST on a tyrosine-kinase inhibitor: Choi criteria (size >= 10 % or "
                "density >= 15 % decrease) are validated on CT (Choi, JCO 2007)",
            )
        )
    if primary is Primary.COLORECTAL and Therapy.ANTI_VEGF in therapies:
        found.append(
            Recommendation(
                "chun",
                "colorectal liver metastases on anti-VEGF therapy: Chun morphologic criteria "
                "(JAMA 2009) find responders whose size barely changes",
            )
        )
    if Therapy.IMMUNOTHERAPY in therapies:
        found.append(
            Recommendation(
                "irecist",
                "immunotherapy: iRECIST confirms progression to recognise pseudoprogression "
                "(Seymour, Lancet Oncol 2017)",
            )
        )
    if primary is Primary.HCC:
        found.append(
            Recommendation(
                "mrecist",
                "hepatocellular carcinoma: mRECIST measures the viable, arterially enhancing "
                "tumour (Lencioni & Llovet 2010)",
            )
        )
    return tuple(found)


def merge_settings(settings: Iterable[ClinicalSetting | None]) -> ClinicalSetting | None:
    """One setting from several sources: the last stated primary, every therapy."""
    primary: Primary | None = None
    therapies: set[Therapy] = set()
    seen = False
    for setting in settings:
        if setting is None:
            continue
        seen = True
        primary = setting.primary or primary
        therapies |= setting.therapies
    return ClinicalSetting(primary, frozenset(therapies)) if seen else None
