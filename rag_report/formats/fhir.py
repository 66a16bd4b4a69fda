"""A draft as an HL7 FHIR R4 Bundle: a preliminary DiagnosticReport, one Observation per predicted
observation and a Device for the algorithm, built and validated with fhir.resources' R4B models.

- DiagnosticReport: status ``preliminary``; category Radiology (LOINC LP29684-5 and v2-0074 RAD); code LOINC
  36554-4 "XR Chest Single view" (a draft reads one frontal image); ``conclusion`` = the impression;
  ``presentedForm`` = the report text as base64 text/plain; ``imagingStudy`` = a logical reference to the study
  by its StudyInstanceUID (``urn:dicom:uid`` / ``urn:oid:...``); ``result`` -> the Observations; ``subject``
  only when a patient reference is given.
- Observation: the observation's SNOMED CT code (rag_report.formats.codes), the classifier probability as
  ``valueQuantity`` (UCUM "1"), interpretation POS / NEG (predicted present or not), ``device`` -> the Device.
- Device: the algorithm's name, version and eCLIP checkpoint hash.
- Simulated-data drafts carry the meta tag v3-ActReason HTEST ("test health data").

Resource ids are derived from the draft and the study (the same draft of the same study gives the same
Bundle), and entries are linked by their ``urn:uuid:`` full URLs (type ``collection``).

>>> bundle = draft_to_fhir_bundle(draft, study_instance_uid="1.2.3")   # doctest: +SKIP
>>> bundle["entry"][0]["resource"]["resourceType"]                      # doctest: +SKIP
'DiagnosticReport'
"""

from __future__ import annotations

import base64
import json
import logging
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from rag_report.errors import HandoffError
from rag_report.formats.codes import (
    CHEST_XR_SINGLE_VIEW,
    INTERPRETATION_URI,
    OBSERVATION_CATEGORY_URI,
    RADIOLOGY_CATEGORY,
    TEST_DATA_TAG,
    V2_0074_URI,
    Concept,
    observation_concept,
)
from rag_report.formats.provenance import algorithm_identity, draft_fingerprint, stable_uuid
from rag_report.protocols import DraftLike

log = logging.getLogger(__name__)

UCUM_URI = "http://unitsofmeasure.org"
DICOM_UID_SYSTEM = "urn:dicom:uid"
ABSENT_URI = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

#: FHIR R4 required value-set bindings of the coded elements written here. fhir.resources checks structure,
#: cardinality, data types and choice elements, but not bindings (it accepts status "draft-ish"), so
#: :func:`validate_bundle` checks these too.
REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Bundle", "type"): frozenset(
        "document message transaction transaction-response batch batch-response history searchset collection".split()
    ),
    ("DiagnosticReport", "status"): frozenset(
        "registered partial preliminary final amended corrected appended cancelled entered-in-error unknown".split()
    ),
    ("Observation", "status"): frozenset(
        "registered preliminary final amended corrected cancelled entered-in-error unknown".split()
    ),
    ("Device", "status"): frozenset("active inactive entered-in-error unknown".split()),
}


def validate_bundle(bundle: dict) -> Bundle:
    """Validate a Bundle dict with fhir.resources' R4B models and the required bindings of REQUIRED_CODES;
    returns the model, or raises HandoffError saying what is wrong where.

    >>> validate_bundle({"resourceType": "Bundle", "type": "pile"})
    Traceback (most recent call last):
    ...
    rag_report.errors.HandoffError: the FHIR Bundle is invalid: Bundle.type 'pile' is not an allowed code
    """
    try:
        model = Bundle.model_validate(bundle)
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise HandoffError(f"the FHIR Bundle is invalid: {exc}") from exc
    _check_bindings(bundle)
    return model


def _check_bindings(bundle: dict) -> None:
    """The required bindings of REQUIRED_CODES, which fhir.resources does not check (HandoffError if broken)."""
    resources = [("Bundle", bundle)] + [
        (f"entry {i} ({e['resource'].get('resourceType')})", e["resource"])
        for i, e in enumerate(bundle.get("entry") or [])
        if isinstance(e.get("resource"), dict)
    ]
    problems = []
    for where, res in resources:
        for (kind, key), allowed in REQUIRED_CODES.items():
            if res.get("resourceType") == kind and key in res and res[key] not in allowed:
                problems.append(f"{where}.{key} {res[key]!r} is not an allowed code")
    if problems:
        raise HandoffError(f"the FHIR Bundle is invalid: {'; '.join(problems)}")


def _coding(concept: Concept) -> Coding:
    return Coding(system=concept.system, code=concept.code, display=concept.meaning)


def _study_reference(study_instance_uid: str) -> Reference:
    return Reference(
        type="ImagingStudy",
        identifier=Identifier(system=DICOM_UID_SYSTEM, value=f"urn:oid:{study_instance_uid}"),
    )


def _interpretation(present: bool) -> CodeableConcept:
    code, display = ("POS", "Positive") if present else ("NEG", "Negative")
    return CodeableConcept(coding=[Coding(system=INTERPRETATION_URI, code=code, display=display)])


def _issued(issued: datetime | None) -> datetime:
    if issued is None:
        return datetime.now(UTC).replace(microsecond=0)
    return issued if issued.tzinfo is not None else issued.replace(tzinfo=UTC)  # FHIR instants need a zone


def _device(draft: DraftLike, device_id: str) -> Device:
    ident = algorithm_identity(draft)
    versions = [DeviceVersion(value=ident.version)]
    if ident.checkpoint:
        versions.append(DeviceVersion(type=CodeableConcept(text="eCLIP checkpoint hash"), value=ident.checkpoint))
    versions += [
        DeviceVersion(type=CodeableConcept(text=key), value=value) for key, value in ident.parameters.items() if value
    ]
    return Device(
        id=device_id,
        status="active",
        manufacturer="rag-report",
        deviceName=[DeviceDeviceName(name=ident.name, type="model-name")],
        version=versions,
    )


def _observation(draft: DraftLike, name: str, obs_id: str, common: dict[str, Any], device_url: str) -> Observation:
    concept = observation_concept(name)
    probability = float(draft.predicted_labels[name])
    if math.isfinite(probability):
        value: dict[str, Any] = {
            "valueQuantity": Quantity(
                value=Decimal(f"{probability:.4f}"), unit="probability", system=UCUM_URI, code="1"
            )
        }
    else:  # a classifier that gave no number: say so rather than write NaN
        value = {"dataAbsentReason": CodeableConcept(coding=[Coding(system=ABSENT_URI, code="not-a-number")])}
    return Observation(
        id=obs_id,
        status="preliminary",
        category=[CodeableConcept(coding=[Coding(system=OBSERVATION_CATEGORY_URI, code="imaging", display="Imaging")])],
        code=CodeableConcept(coding=[_coding(concept)], text=name),
        **value,
        interpretation=[_interpretation(name in draft.predicted_positive)],
        method=CodeableConcept(text="label classifier over the eCLIP image embedding, at its own threshold"),
        device=Reference(reference=device_url),
        **common,
    )


def draft_to_fhir_bundle(
    draft: DraftLike,
    *,
    study_instance_uid: str | None = None,
    patient_reference: str | None = None,
    issued: datetime | None = None,
) -> dict:
    """FHIR R4 Bundle (fhir.resources.R4B models, validated) as a JSON-ready dict: DiagnosticReport + Observations.

    ``study_instance_uid`` links the report to its DICOM study; ``patient_reference`` (e.g. "Patient/123")
    becomes every resource's subject (left out when None: a draft knows no patient); ``issued`` defaults to
    now (a naive datetime is taken as UTC). Raises HandoffError when a resource does not validate.

    >>> from rag_report.report import DraftReport
    >>> d = DraftReport("Clear lungs.", "Normal.", [], [], {}, {}, {"eclip_checkpoint": "abc"}, "top1",
    ...                 predicted_labels={"Cardiomegaly": 0.2}, predicted_positive=[])
    >>> b = draft_to_fhir_bundle(d, study_instance_uid="1.2.3")
    >>> [e["resource"]["resourceType"] for e in b["entry"]]
    ['DiagnosticReport', 'Observation', 'Device']
    >>> b["entry"][0]["resource"]["conclusion"], b["entry"][0]["resource"]["status"]
    ('Normal.', 'preliminary')
    """
    out = _bundle_model(draft, study_instance_uid, patient_reference, issued).model_dump(mode="json")
    # The models validated every resource as it was built; what they leave out is the required bindings.
    # (A second full validation of the dump, Bundle.model_validate, would double the cost and find nothing
    # new: tests validate written bundles from scratch with validate_bundle.)
    _check_bindings(out)
    return out


def draft_to_fhir_json(
    draft: DraftLike,
    *,
    study_instance_uid: str | None = None,
    patient_reference: str | None = None,
    issued: datetime | None = None,
    indent: int | None = 1,
) -> str:
    """The Bundle of :func:`draft_to_fhir_bundle` as JSON text, serialised by the models themselves (a
    third faster than the dict and ``json.dumps``; what a batch writes to ``fhir.json``).

    >>> from rag_report.report import DraftReport
    >>> d = DraftReport("Clear lungs.", "Normal.", [], [], {}, {}, {"eclip_checkpoint": "abc"}, "top1")
    >>> json.loads(draft_to_fhir_json(d))["entry"][0]["resource"]["status"]
    'preliminary'
    """
    text = _bundle_model(draft, study_instance_uid, patient_reference, issued).model_dump_json(indent=indent)
    _check_bindings(json.loads(text))
    return text


def _bundle_model(
    draft: DraftLike, study_instance_uid: str | None, patient_reference: str | None, issued: datetime | None
) -> Bundle:
    """The validated Bundle model (the required bindings are the caller's to check)."""
    when = _issued(issued)
    seed = (draft_fingerprint(draft), study_instance_uid or "", patient_reference or "")
    report_id, device_id = stable_uuid(*seed, "report"), stable_uuid(*seed, "device")
    names = [n for n in CHEXPERT_OBSERVATIONS if n in draft.predicted_labels]
    names += sorted(n for n in draft.predicted_labels if n not in names)  # unknown names: refused below
    obs_ids = {n: stable_uuid(*seed, "observation", n) for n in names}
    study = _study_reference(study_instance_uid) if study_instance_uid else None
    common: dict[str, Any] = {"issued": when}
    if patient_reference:
        common["subject"] = Reference(reference=patient_reference)
    if draft.simulated_data:
        common["meta"] = Meta(tag=[Coding(system=TEST_DATA_TAG[0], code=TEST_DATA_TAG[1], display=TEST_DATA_TAG[2])])
    try:
        observations = [
            _observation(
                draft,
                n,
                obs_ids[n],
                {**common, **({"derivedFrom": [study]} if study else {})},
                f"urn:uuid:{device_id}",
            )
            for n in names
        ]
        report = DiagnosticReport(
            id=report_id,
            identifier=[Identifier(system="urn:ietf:rfc:3986", value=f"urn:uuid:{report_id}")],
            status="preliminary",
            category=[
                CodeableConcept(
                    coding=[
                        _coding(RADIOLOGY_CATEGORY),
                        Coding(system=V2_0074_URI, code="RAD", display="Radiology"),
                    ]
                )
            ],
            code=CodeableConcept(coding=[_coding(CHEST_XR_SINGLE_VIEW)], text="Chest X-ray AI draft report"),
            imagingStudy=[study] if study else None,
            result=[Reference(reference=f"urn:uuid:{obs_ids[n]}", display=n) for n in names] or None,
            conclusion=draft.impression or None,
            presentedForm=[
                Attachment(
                    contentType="text/plain; charset=utf-8",
                    language="en",
                    data=base64.b64encode(draft.text.encode("utf-8")),
                    title="AI draft report (preliminary, unverified)",
                )
            ]
            if draft.text
            else None,
            **common,
        )
        resources = [report, *observations, _device(draft, device_id)]
        bundle = Bundle(
            id=stable_uuid(*seed, "bundle"),
            type="collection",
            timestamp=when,
            entry=[BundleEntry(fullUrl=f"urn:uuid:{r.id}", resource=r) for r in resources],
        )
    except ValidationError as exc:
        raise HandoffError(f"the FHIR resources of this draft do not validate: {exc}") from exc
    log.info("FHIR bundle built: %d observation(s)", len(observations))
    return bundle
