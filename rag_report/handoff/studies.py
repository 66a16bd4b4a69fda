"""Studies of a batch: DICOM instances grouped by study then series, and the frontal image each drafts from.

A study is keyed by a hash of its StudyInstanceUID (:func:`study_key`), never by a patient name, id or
file name, so output folders, logs and the summary carry no identifier. Which image a study drafts from
is decided from headers alone (:mod:`eclip_core.data.dicom_views`): CR/DX only, laterals never, PA before
AP before a frontal of unstated projection before an image whose header says nothing; a study left with
none gets the reason instead.

>>> from pydicom import Dataset
>>> def image(uid, view, modality="DX"):
...     ds = Dataset(); ds.StudyInstanceUID = "1.2.3"; ds.SeriesInstanceUID = uid; ds.SOPInstanceUID = uid + ".1"
...     ds.Modality, ds.ViewPosition, ds.Rows = modality, view, 8
...     return Instance(ds)
>>> study = group_instances([image("1.2.3.2", "LL"), image("1.2.3.3", "AP"), image("1.2.3.4", "PA")])[0]
>>> [i.header.ViewPosition for i in rank_frontal(study.instances)[0]]
['PA', 'AP']
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eclip_core.data.dicom_views import XRAY_MODALITIES, assess_dataset

#: Modalities of non-image objects a study may hold (reports, key objects, presentation states).
NON_IMAGE_MODALITIES = ("SR", "KO", "PR", "DOC", "REG", "SEG")


def study_key(uid_or_path: str, prefix: str = "study") -> str:
    """A folder / row name for a study that names no patient: a prefix and 16 hex digits of a SHA-256.

    >>> study_key("1.2.840.1"), study_key("1.2.840.1") == study_key("1.2.840.2")
    ('study-f9a13599155b7052', False)
    """
    return f"{prefix}-{hashlib.sha256(uid_or_path.encode()).hexdigest()[:16]}"


@dataclass
class Instance:
    """One DICOM instance: its header (pixels not needed) and where its whole file comes from."""

    header: Any
    path: Path | None = None
    #: Returns the whole file's bytes (a PACS retrieve), for instances without a local path.
    fetch: Callable[[], bytes] | None = None

    def get(self, keyword: str) -> str:
        try:
            return str(self.header.get(keyword, "") or "").strip()
        except Exception:  # a malformed element reads as absent
            return ""

    @property
    def is_image(self) -> bool:
        return self.get("Modality").upper() not in NON_IMAGE_MODALITIES and bool(self.get("Rows"))

    def image_source(self) -> Path | bytes:
        """What the image loader reads: the local file, or the retrieved bytes."""
        if self.path is not None:
            return self.path
        if self.fetch is None:
            raise ValueError("instance has neither a path nor a way to fetch it")
        return self.fetch()


@dataclass
class StudyInput:
    """One study to draft: its instances (DICOM) or image files (PNG / JPEG), or why it cannot be drafted."""

    key: str
    instances: list[Instance] = field(default_factory=list)
    #: PNG / JPEG files of an image study (no header: the first in name order is drafted).
    images: list[Path] = field(default_factory=list)
    #: A reason decided at discovery (an unreadable file, no StudyInstanceUID); the study is not drafted.
    problem: str = ""
    #: Reads the study's instances when first needed (a PACS study is searched first, retrieved later).
    load: Callable[[], list[Instance]] | None = None
    #: Number of series / images, known before loading (PACS search results); None: count the instances.
    n_images_hint: int | None = None

    def resolve(self) -> None:
        """Load the instances of a lazily listed study (a no-op when they are here)."""
        if self.load is not None:
            self.instances, self.load = self.load(), None

    @property
    def n_images(self) -> int:
        if self.images:
            return len(self.images)
        if self.instances:
            return sum(1 for i in self.instances if i.is_image)
        return self.n_images_hint or 0


def group_instances(instances: Iterable[Instance]) -> list[StudyInput]:
    """Instances grouped by StudyInstanceUID (then ordered by series and instance number), one
    :class:`StudyInput` per study, in key order. An instance without a StudyInstanceUID becomes a study of
    its own with that problem (keyed by its SOPInstanceUID or file)."""
    by_study: dict[str, list[Instance]] = {}
    orphans: list[StudyInput] = []
    for inst in instances:
        uid = inst.get("StudyInstanceUID")
        if not uid:
            origin = inst.get("SOPInstanceUID") or str(inst.path or id(inst))
            orphans.append(
                StudyInput(
                    study_key(origin, "file"),
                    instances=[inst],
                    problem="no StudyInstanceUID in the DICOM header; the instance cannot be filed into a study",
                )
            )
            continue
        by_study.setdefault(uid, []).append(inst)
    studies = [
        StudyInput(study_key(uid), instances=sorted(group, key=_series_order)) for uid, group in by_study.items()
    ]
    return sorted(studies + orphans, key=lambda s: s.key)


def _series_order(inst: Instance) -> tuple:
    def number(keyword: str) -> int:
        try:
            return int(inst.get(keyword) or 0)
        except ValueError:
            return 0

    return (number("SeriesNumber"), inst.get("SeriesInstanceUID"), number("InstanceNumber"), inst.get("SOPInstanceUID"))


def rank_frontal(instances: Sequence[Instance]) -> tuple[list[Instance], str]:
    """The study's usable images, best first (PA, AP, frontal, unstated view; ties by series order), and
    when there is none, why: no image, no CR/DX image (naming the modalities found), only laterals, ..."""
    images = [i for i in instances if i.is_image]
    if not images:
        return [], "no image in the study (no instance with pixel data)"
    assessed = [(assess_dataset(i.header), n, i) for n, i in enumerate(images)]
    usable = [(a.rank, n, i) for a, n, i in assessed if a.usable]
    if usable:
        return [i for _, _, i in sorted(usable, key=lambda t: (t[0], t[1]))], ""
    modalities = Counter(a.modality or "missing" for a, _, _ in assessed)
    xray = [a for a, _, _ in assessed if a.modality in XRAY_MODALITIES]
    if not xray:
        found = ", ".join(f"{m} ({n} images)" for m, n in sorted(modalities.items()))
        return [], f"no CR/DX radiograph in the study (found {found}); drafts are made for chest X-rays only"
    if all(a.view == "LATERAL" for a in xray):
        return [], f"only lateral views ({len(xray)} CR/DX images); drafts are made for frontal (PA or AP) views"
    return [], "no usable frontal image: " + "; ".join(sorted({r for a in xray for r in a.reasons}))
