"""The result types of drafting: `DraftReport` and its `Evidence` and per-sentence provenance."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SIMULATED_NOTICE = (
    "Default bundle: real Open-I report text with SIMULATED (phantom) radiographs. "
    "Not for clinical use; numbers on it do not transfer to real images."
)


@dataclass
class Evidence:
    """One retrieved prior report that the draft may draw from."""

    study_id: str
    rank: int
    similarity: float
    findings: str
    impression: str
    labels: dict[str, float | None] = field(default_factory=dict)
    sentences_used: list[str] = field(default_factory=list)
    #: Jaccard agreement of this report's positive labels with the image's predicted ones (None: retrieved
    #: without label boost).
    label_agreement: float | None = None

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.findings, self.impression) if p)


@dataclass
class SentenceProvenance:
    """Where one sentence of the draft came from (empty sources for free-mode text)."""

    sentence: str
    section: str  # "findings" | "impression"
    source_ids: list[str] = field(default_factory=list)


@dataclass
class DraftReport:
    """A drafted report with its evidence, labels, timings and the identities of the models used.

    ``to_dict()`` is JSON-safe; ``text`` is the report as a radiologist reads it.
    """

    findings: str
    impression: str
    evidence: list[Evidence]
    provenance: list[SentenceProvenance]
    labels: dict[str, float | None]
    timings_ms: dict[str, float]
    models: dict[str, str]
    mode: str
    simulated_data: bool = False
    warnings: list[str] = field(default_factory=list)
    #: k-NN cosine of the query X-ray to the index's sampled corpus X-rays, and the floor of the corpus's own
    #: usual range (its leave-one-out 1st percentile, or the caller's); below it the draft carries a warning.
    #: None when the index holds no image sample.
    typicality: float | None = None
    typicality_floor: float | None = None
    #: Probability of each CheXpert observation predicted from the image by the index's label classifiers,
    #: and the observations predicted present (each at its classifier's threshold); empty without classifiers.
    predicted_labels: dict[str, float] = field(default_factory=dict)
    predicted_positive: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = []
        if self.findings:
            parts.append(f"FINDINGS: {self.findings}")
        if self.impression:
            parts.append(f"IMPRESSION: {self.impression}")
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["text"] = self.text
        for ev, ev_d in zip(self.evidence, d["evidence"]):
            ev_d["text"] = ev.text
        if self.simulated_data:
            d["notice"] = SIMULATED_NOTICE
        return _json_safe(d)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_dicom_sr(self, source_datasets: Any, **kwargs: Any) -> Any:
        """This draft as a preliminary DICOM Comprehensive SR (a highdicom dataset) filed into the study of
        ``source_datasets`` (the pydicom datasets of the image(s) drafted from); ``kwargs`` as
        :func:`rag_report.handoff.sr.draft_to_sr`. Save it with ``.save_as(path)``."""
        from rag_report.handoff.sr import draft_to_sr  # highdicom is heavy: imported on use

        return draft_to_sr(self, source_datasets, **kwargs)

    def to_fhir(self, **kwargs: Any) -> dict[str, Any]:
        """This draft as a validated FHIR R4 Bundle (DiagnosticReport + Observations), a JSON-ready dict;
        ``kwargs`` (study_instance_uid, patient_reference, issued) as
        :func:`rag_report.handoff.fhir.draft_to_fhir_bundle`."""
        from rag_report.handoff.fhir import draft_to_fhir_bundle  # fhir.resources is heavy: imported on use

        return draft_to_fhir_bundle(self, **kwargs)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _json_safe(obj.item())
    return obj
