"""The codes the hand-off writers use, in one place: SNOMED CT per CheXpert observation, and the LOINC / DICOM
codes of report titles, sections and categories.

SNOMED CT concepts were chosen by name, as "finding" or "disorder" concepts for what the CheXpert labeler
means by each observation, and checked against published value sets where possible; a terminologist should
review them before clinical use. ``Enlarged Cardiomediastinum`` has no SNOMED CT concept that could be
confirmed, so it carries a local code (scheme ``99RAGRPT``) until one is assigned.

>>> OBSERVATION_CODES["Cardiomegaly"].code, OBSERVATION_CODES["Cardiomegaly"].system
('8186001', 'http://snomed.info/sct')
>>> sorted(OBSERVATION_CODES) == sorted(CHEXPERT_OBSERVATIONS)
True
"""

from __future__ import annotations

from dataclasses import dataclass

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from rag_report.errors import HandoffError

SNOMED_URI = "http://snomed.info/sct"
LOINC_URI = "http://loinc.org"
#: A local coding scheme (DICOM: designators starting "99" are private) for codes no standard one provides.
LOCAL_SCHEME = "99RAGRPT"
LOCAL_URI = "urn:rag-report:observation"
#: DICOM coding scheme designator -> FHIR system URI.
SYSTEM_URIS = {"SCT": SNOMED_URI, "LN": LOINC_URI, LOCAL_SCHEME: LOCAL_URI}


@dataclass(frozen=True)
class Concept:
    """A coded concept as DICOM writes it (value, scheme designator, meaning)."""

    code: str
    scheme: str
    meaning: str

    @property
    def system(self) -> str:
        """The FHIR ``Coding.system`` of the scheme."""
        return SYSTEM_URIS[self.scheme]


def _sct(code: str, meaning: str) -> Concept:
    return Concept(code, "SCT", meaning)


#: CheXpert observation -> the concept a coded finding carries. Chosen by name; review before clinical use.
OBSERVATION_CODES: dict[str, Concept] = {
    "No Finding": _sct("281900007", "No abnormality detected"),
    "Enlarged Cardiomediastinum": Concept("ECM", LOCAL_SCHEME, "Enlarged cardiomediastinum"),
    "Cardiomegaly": _sct("8186001", "Cardiomegaly"),
    # No SNOMED CT concept names "lung opacity"; the radiologic-density finding is the nearest by meaning.
    "Lung Opacity": _sct("28328005", "Abnormal radiologic density"),
    "Lung Lesion": _sct("309529002", "Lung mass"),
    "Edema": _sct("19242006", "Pulmonary edema"),
    "Consolidation": _sct("95436008", "Lung consolidation"),
    "Pneumonia": _sct("233604007", "Pneumonia"),
    "Atelectasis": _sct("46621007", "Atelectasis"),
    "Pneumothorax": _sct("36118008", "Pneumothorax"),
    "Pleural Effusion": _sct("60046008", "Pleural effusion"),
    "Pleural Other": _sct("301256004", "Pleura finding"),
    "Fracture": _sct("125605004", "Fracture of bone"),
    "Support Devices": _sct("49062001", "Device"),
}

# Report structure (DICOM PS3.16 / LOINC).
REPORT_TITLE = Concept("18748-4", "LN", "Diagnostic imaging study")
FINDINGS_SECTION = Concept("121070", "DCM", "Findings")
FINDING = Concept("121071", "DCM", "Finding")
IMPRESSIONS_SECTION = Concept("121072", "DCM", "Impressions")
IMPRESSION = Concept("121073", "DCM", "Impression")
PROBABILITY = Concept("122157", "DCM", "Probability")
SOURCE_IMAGE = Concept("121324", "DCM", "Source image")
COMMENT = Concept("121106", "DCM", "Comment")
NO_UNITS = Concept("1", "UCUM", "no units")

# FHIR DiagnosticReport: what kind of report, for which exam.
CHEST_XR_SINGLE_VIEW = Concept("36554-4", "LN", "XR Chest Single view")
RADIOLOGY_CATEGORY = Concept("LP29684-5", "LN", "Radiology")
V2_0074_URI = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY_URI = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_URI = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#: Meta tag of test data (v3 ActReason HTEST): set when the draft came from the simulated default bundle.
TEST_DATA_TAG = ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")


def observation_concept(name: str) -> Concept:
    """The concept of a CheXpert observation; a clear error for a name that is not one.

    >>> observation_concept("Pneumothorax").meaning
    'Pneumothorax'
    """
    try:
        return OBSERVATION_CODES[name]
    except KeyError:
        raise HandoffError(
            f"{name!r} is not a CheXpert observation, so it has no code: use one of {', '.join(CHEXPERT_OBSERVATIONS)}"
        ) from None
