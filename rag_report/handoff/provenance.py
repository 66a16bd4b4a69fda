"""Who made a draft, as the hand-off writers state it: the algorithm's name and version, the eCLIP checkpoint
hash and the other model identities of ``DraftReport.models``; and stable identifiers derived from them.

Identifiers are derived, not random, so that writing the same draft of the same study twice gives the same
SOP Instance UID / Bundle ids: a PACS that receives it again keeps one copy.

>>> stable_uid("a", "b") == stable_uid("a", "b") != stable_uid("a", "c")
True
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from importlib import metadata

from rag_report.report import DraftReport

ALGORITHM_NAME = "rag-report eCLIP retrieval-augmented drafting"
#: Namespace of the derived FHIR ids (uuid5).
_UUID_NAMESPACE = uuid.UUID("5d0c4a1e-2f3b-5a8e-9c1d-7b6e4f2a9c30")


def software_version() -> str:
    """The installed rag-report version ("unknown" when run from a source tree that is not installed)."""
    try:
        return metadata.version("rag-report")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class AlgorithmIdentity:
    """The algorithm behind a draft: name, version, eCLIP checkpoint hash and the other model identities."""

    name: str
    version: str
    checkpoint: str
    parameters: dict[str, str] = field(default_factory=dict)

    def parameter_lines(self) -> list[str]:
        """``key=value`` lines, checkpoint first, empty values left out."""
        items = {"eclip_checkpoint": self.checkpoint, **self.parameters}
        return [f"{k}={v}" for k, v in items.items() if v]


def algorithm_identity(draft: DraftReport) -> AlgorithmIdentity:
    """The identity of the algorithm that made ``draft`` (from ``draft.models`` and the installed version).

    >>> from rag_report.report import DraftReport
    >>> d = DraftReport("", "", [], [], {}, {}, {"eclip_checkpoint": "abc123", "index_id": "ix"}, "top1")
    >>> algorithm_identity(d).parameter_lines()
    ['eclip_checkpoint=abc123', 'index_id=ix', 'generation_mode=top1']
    """
    models = {k: str(v) for k, v in draft.models.items() if v is not None}
    checkpoint = models.pop("eclip_checkpoint", "")
    models.setdefault("generation_mode", draft.mode)
    return AlgorithmIdentity(ALGORITHM_NAME, software_version(), checkpoint, models)


def draft_fingerprint(draft: DraftReport) -> str:
    """A hash of what a result states: the text, the predictions and the model identities."""
    payload = {
        "findings": draft.findings,
        "impression": draft.impression,
        "predicted": {k: round(float(v), 6) for k, v in sorted(draft.predicted_labels.items())},
        "positive": sorted(draft.predicted_positive),
        "models": {k: str(v) for k, v in sorted(draft.models.items())},
        "simulated": draft.simulated_data,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stable_uid(*parts: str) -> str:
    """A DICOM UID derived from ``parts`` (pydicom's root; the same parts give the same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def stable_uuid(*parts: str) -> str:
    """A UUID derived from ``parts`` (for FHIR ids and urn:uuid full URLs)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, "\x1f".join(str(p) for p in parts)))
