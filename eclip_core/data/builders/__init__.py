"""Manifest builders for the datasets users bring: Open-I (NLMCXR folder or Kaggle repack),
MIMIC-CXR-JPG, EGD-CXR gaze, REFLACX gaze and the COVID-19 image data collection. Each writes a manifest in the core format
(:mod:`eclip_core.data.manifest`) and returns its path.

>>> from eclip_core.data.builders import build_mimic_manifest  # doctest: +SKIP
"""

from eclip_core.data.builders.covid import build_covid_manifest
from eclip_core.data.builders.egd import build_egd_manifest
from eclip_core.data.builders.mimic import build_mimic_manifest
from eclip_core.data.builders.openi_folder import build_openi_kaggle_manifest, build_openi_manifest
from eclip_core.data.builders.reflacx import build_reflacx_manifest
from eclip_core.data.builders.sectioning import ReportSections, section_report

__all__ = [
    "build_covid_manifest",
    "build_egd_manifest",
    "build_mimic_manifest",
    "build_openi_kaggle_manifest",
    "build_openi_manifest",
    "build_reflacx_manifest",
    "ReportSections",
    "section_report",
]
