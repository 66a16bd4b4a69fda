"""The FHIR writer: a draft becomes an R4 Bundle that fhir.resources' R4B models validate (and a broken copy
does not), with a preliminary DiagnosticReport whose conclusion and presented form are the draft's, and one
Observation per predicted observation with its SNOMED CT code, probability and interpretation."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

pytest.importorskip("fhir.resources")
from fhir.resources.R4B.bundle import Bundle  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from rag_report.errors import HandoffError  # noqa: E402
from rag_report.formats.fhir import draft_to_fhir_bundle, draft_to_fhir_json, validate_bundle  # noqa: E402
from tests.handoff_data import IMPRESSION, POSITIVE, POSITIVE_SNOMED, PREDICTED, sample_draft  # noqa: E402

STUDY_UID = "1.2.826.0.1.3680043.8.498.12345"
ISSUED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_bundle_round_trips_and_states_the_draft():
    draft = sample_draft()
    bundle = draft_to_fhir_bundle(draft, study_instance_uid=STUDY_UID, issued=ISSUED)
    assert Bundle.model_validate(bundle).model_dump(mode="json") == bundle
    assert json.loads(json.dumps(bundle)) == bundle  # JSON-ready as it is
    assert bundle["type"] == "collection"

    (report,) = _resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary" and report["conclusion"] == IMPRESSION
    (form,) = report["presentedForm"]
    assert (
        form["contentType"] == "text/plain; charset=utf-8"
        and base64.b64decode(form["data"]).decode("utf-8") == draft.text
    )
    assert report["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "36554-4",
        "display": "XR Chest Single view",
    }
    categories = {(c["system"], c["code"]) for c in report["category"][0]["coding"]}
    assert categories == {
        ("http://loinc.org", "LP29684-5"),
        ("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"),
    }
    (study,) = report["imagingStudy"]  # R4 name (R5 renamed it "study")
    assert study["identifier"] == {"system": "urn:dicom:uid", "value": f"urn:oid:{STUDY_UID}"}
    assert report["issued"] == "2026-12-07T09:30:00Z"


def test_one_observation_per_predicted_observation():
    bundle = draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID, issued=ISSUED)
    observations = _resources(bundle, "Observation")
    assert sorted(o["code"]["text"] for o in observations) == sorted(PREDICTED)
    by_name = {o["code"]["text"]: o for o in observations}
    for name, probability in PREDICTED.items():
        obs = by_name[name]
        assert obs["status"] == "preliminary"
        assert obs["valueQuantity"]["value"] == pytest.approx(probability, abs=1e-4)
        assert obs["valueQuantity"]["code"] == "1"
        assert obs["interpretation"][0]["coding"][0]["code"] == ("POS" if name in POSITIVE else "NEG")
        assert obs["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    for name, code in POSITIVE_SNOMED.items():
        assert by_name[name]["code"]["coding"][0]["code"] == code
    # Every reference resolves inside the bundle; full URLs are unique urn:uuid's.
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)
    (report,) = _resources(bundle, "DiagnosticReport")
    assert {r["reference"] for r in report["result"]} == {
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    }
    (device,) = _resources(bundle, "Device")
    assert {o["device"]["reference"] for o in observations} == {f"urn:uuid:{device['id']}"}
    assert "0123456789abcdef" in [v["value"] for v in device["version"]]


def test_validation_is_real_a_broken_bundle_is_refused():
    bundle = draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID, issued=ISSUED)
    assert isinstance(validate_bundle(bundle), Bundle)
    # fhir.resources checks structure and types but not required bindings: validate_bundle adds those.
    bad_status = json.loads(json.dumps(bundle))
    bad_status["entry"][0]["resource"]["status"] = "draft-ish"
    Bundle.model_validate(bad_status)
    with pytest.raises(HandoffError, match=r"entry 0 \(DiagnosticReport\)\.status 'draft-ish' is not an allowed code"):
        validate_bundle(bad_status)
    bad_type = dict(bundle, type="pile")
    with pytest.raises(HandoffError, match="Bundle.type 'pile'"):
        validate_bundle(bad_type)
    bad_date = json.loads(json.dumps(bundle))
    bad_date["entry"][0]["resource"]["issued"] = "yesterday"
    with pytest.raises(HandoffError, match="invalid"):
        validate_bundle(bad_date)
    bad_value = json.loads(json.dumps(bundle))
    bad_value["entry"][1]["resource"]["valueQuantity"]["value"] = "very likely"
    with pytest.raises(ValidationError):
        Bundle.model_validate(bad_value)
    no_code = json.loads(json.dumps(bundle))
    del no_code["entry"][0]["resource"]["code"]  # DiagnosticReport.code is 1..1
    with pytest.raises(ValidationError):
        Bundle.model_validate(no_code)


def test_subject_only_with_a_patient_reference():
    anonymous = draft_to_fhir_bundle(sample_draft(), issued=ISSUED)
    assert (
        '"subject"' not in json.dumps(anonymous) and "imagingStudy" not in _resources(anonymous, "DiagnosticReport")[0]
    )
    named = draft_to_fhir_bundle(sample_draft(), patient_reference="Patient/example-7", issued=ISSUED)
    for res in _resources(named, "DiagnosticReport") + _resources(named, "Observation"):
        assert res["subject"] == {"reference": "Patient/example-7"}


def test_simulated_drafts_are_tagged_as_test_data():
    tagged = draft_to_fhir_bundle(sample_draft(simulated=True), issued=ISSUED)
    for entry in tagged["entry"][:-1]:  # the report and observations; the Device is not data
        assert entry["resource"]["meta"]["tag"][0]["code"] == "HTEST"
    plain = draft_to_fhir_bundle(sample_draft(), issued=ISSUED)
    assert "HTEST" not in json.dumps(plain)


def test_ids_are_stable_and_times_take_a_zone():
    a = draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID, issued=ISSUED)
    b = draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID, issued=ISSUED)
    assert a == b
    other = draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID + "9", issued=ISSUED)
    assert other["entry"][0]["fullUrl"] != a["entry"][0]["fullUrl"]
    naive = draft_to_fhir_bundle(sample_draft(), issued=datetime(2026, 1, 2, 3, 4, 5))
    assert naive["timestamp"] == "2026-01-02T03:04:05Z"
    cet = draft_to_fhir_bundle(
        sample_draft(), issued=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    )
    assert cet["timestamp"] == "2026-01-02T03:04:05+01:00"


def test_empty_parts_are_left_out_and_unknown_observations_refused():
    draft = sample_draft()
    draft.impression, draft.predicted_labels, draft.predicted_positive = "", {}, []
    bundle = draft_to_fhir_bundle(draft, issued=ISSUED)
    (report,) = _resources(bundle, "DiagnosticReport")
    assert "conclusion" not in report and "result" not in report and not _resources(bundle, "Observation")
    assert base64.b64decode(report["presentedForm"][0]["data"]).decode() == draft.text
    draft.predicted_labels = {"Hernia": 0.5}
    with pytest.raises(HandoffError, match="'Hernia' is not a CheXpert observation"):
        draft_to_fhir_bundle(draft)


def test_draft_report_to_fhir_wrapper():
    bundle = sample_draft().to_fhir(study_instance_uid=STUDY_UID, issued=ISSUED)
    assert bundle == draft_to_fhir_bundle(sample_draft(), study_instance_uid=STUDY_UID, issued=ISSUED)


def test_a_probability_that_is_not_a_number_is_marked_absent():
    draft = sample_draft()
    draft.predicted_labels["Edema"] = float("nan")
    bundle = draft_to_fhir_bundle(draft, issued=ISSUED)
    (edema,) = [o for o in _resources(bundle, "Observation") if o["code"]["text"] == "Edema"]
    assert "valueQuantity" not in edema and edema["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"
    assert "NaN" not in json.dumps(bundle)


def test_the_json_text_a_batch_writes_is_the_same_bundle():
    draft = sample_draft()
    draft.predicted_labels["Edema"] = float("nan")
    draft.findings += " Stable — 2 cm nodule, unchanged."  # beyond ASCII
    draft.simulated_data = True
    for kwargs in ({"study_instance_uid": STUDY_UID, "patient_reference": "Patient/7"}, {}):
        text = draft_to_fhir_json(draft, issued=ISSUED, **kwargs)
        assert json.loads(text) == draft_to_fhir_bundle(draft, issued=ISSUED, **kwargs)
        validate_bundle(json.loads(text))
    assert "NaN" not in text and "\n" in text
    draft.predicted_labels = {"Hernia": 0.5}
    with pytest.raises(HandoffError, match="'Hernia' is not a CheXpert observation"):
        draft_to_fhir_json(draft)
