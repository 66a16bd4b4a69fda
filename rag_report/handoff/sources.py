"""Where a batch's studies come from: a folder (recursive), a study manifest, or a PACS over DICOMweb.

Each source lists :class:`~rag_report.handoff.studies.StudyInput` s, sorted by their key. A folder and a
manifest read headers only (pixels are read for the one image a study drafts from); a PACS is searched with
QIDO-RS (study date and modality filters) and each study's metadata and chosen image are retrieved with
WADO-RS when the study's turn comes, so a long batch starts at once and holds one study in memory.

>>> import tempfile, pathlib, numpy as np
>>> from eclip_core.data.dicom import write_test_dicom
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_test_dicom(d / "a.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4))
>>> _ = (d / "notes.txt").write_text("not an image")
>>> [(s.key[:5], s.n_images, bool(s.problem)) for s in folder_studies(d)]
[('file-', 0, True), ('study', 1, False)]
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from eclip_core.privacy import file_tag
from rag_report.errors import HandoffError
from rag_report.handoff.studies import Instance, StudyInput, group_instances, study_key

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Studies asked for per QIDO-RS search request.
QIDO_PAGE = 500


class SourceError(HandoffError):
    """A batch source cannot be read at all: a missing folder, an unreadable manifest, a PACS that is down."""


def _read_header(path: Path) -> Any | None:
    """The header of a DICOM file (no pixels), or None when it is not a readable DICOM file."""
    import pydicom

    with path.open("rb") as f:
        head = f.read(132)
    if head[128:132] != b"DICM" and path.suffix.lower() not in (".dcm", ".dicom", ".dic"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        except Exception:  # truncated inside the header, or not DICOM at all
            return None
    # A file cut inside its header parses to its first elements only: an instance names itself.
    return ds if "SOPInstanceUID" in ds else None


def folder_studies(root: str | os.PathLike, *, images_per_folder: bool = False) -> list[StudyInput]:
    """Every file under ``root``: DICOM instances grouped into studies; PNG / JPEG files one study each
    (``images_per_folder``: one study per folder of them); any other file a study with the problem."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder; give a folder of DICOM / PNG / JPEG files, a manifest or a URL")
    instances: list[Instance] = []
    images: dict[str, list[Path]] = {}
    studies: list[StudyInput] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(root).as_posix()
        if path.name.upper() == "DICOMDIR":
            continue  # the export's directory file, not an instance
        if path.suffix.lower() in IMAGE_SUFFIXES:
            group = path.parent.relative_to(root).as_posix() if images_per_folder else rel
            images.setdefault(group, []).append(path)
            continue
        header = _read_header(path)
        if header is None:
            log.info("%s: not a DICOM or PNG/JPEG file; listed in the summary", file_tag(path))
            problem = "not a readable DICOM or PNG/JPEG file (junk, or DICOM truncated inside its header)"
            studies.append(StudyInput(study_key(rel, "file"), problem=problem))
            continue
        instances.append(Instance(header, path=path))
    studies += group_instances(instances)
    studies += [StudyInput(study_key(group, "images"), images=files) for group, files in images.items()]
    return sorted(studies, key=lambda s: s.key)


def manifest_studies(path: str | os.PathLike) -> list[StudyInput]:
    """One study per manifest row (eclip_core.data.manifest): its DICOM files ranked by header, or its
    PNG / JPEG files (the first is drafted). The key hashes the row's study_id."""
    from eclip_core.data.manifest import read_manifest
    from eclip_core.errors import EClipError

    try:
        rows = read_manifest(path)
    except EClipError as exc:
        raise SourceError(str(exc)) from None
    studies = []
    for row in rows:
        key = study_key(row.study_id)
        files = [Path(p) for p in row.image_paths]
        missing = [p for p in files if not p.is_file()]
        if missing:
            studies.append(StudyInput(key, problem=f"{len(missing)} of the row's {len(files)} image files are missing"))
            continue
        dicom = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not dicom:
            studies.append(StudyInput(key, images=files))
            continue
        headers = [(p, _read_header(p)) for p in dicom]
        unreadable = sum(1 for _, h in headers if h is None)
        instances = [Instance(h, path=p) for p, h in headers if h is not None]
        problem = "" if instances else f"none of the row's {unreadable} DICOM files is readable"
        studies.append(StudyInput(key, instances=instances, problem=problem))
    return sorted(studies, key=lambda s: s.key)


@dataclass
class DicomWebFilters:
    """QIDO-RS study search filters (DICOM attribute matching)."""

    #: StudyDate, a date or range: 20240101, 20240101-20240131, 20240101- .
    study_date: str | None = None
    #: ModalitiesInStudy, e.g. CR or DX.
    modality: str | None = None

    def as_query(self) -> dict[str, str]:
        query = {}
        if self.study_date:
            query["StudyDate"] = self.study_date
        if self.modality:
            query["ModalitiesInStudy"] = self.modality
        return query


def _unreachable(url: str, exc: Exception) -> SourceError:
    return SourceError(
        f"cannot search the PACS at {url} ({type(exc).__name__}): is it running, and is this its DICOMweb root "
        f"(e.g. http://host:8042/dicom-web)? Nothing was drafted or written"
    )


def dicomweb_client(url: str) -> Any:
    """A DICOMweb client for ``url`` that retries a busy PACS (HTTP 429/503/...) 3 times within ~1 s, so a
    PACS that is down is reported in seconds, not after half a minute of back-off."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=url.rstrip("/"))
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=250)
    return client


def dicomweb_studies(url: str, filters: DicomWebFilters | None = None, *, client: Any = None) -> list[StudyInput]:
    """The PACS's studies matching ``filters`` (QIDO-RS); each study's metadata (WADO-RS) is read when the
    batch reaches it, and only the chosen image's file is retrieved. Raises :class:`SourceError` when the
    PACS cannot be searched (down, wrong URL, refused)."""
    client = client or dicomweb_client(url)
    query = (filters or DicomWebFilters()).as_query()
    studies: list[StudyInput] = []
    seen: set[str] = set()
    offset = 0
    while True:  # page by page; a PACS that ignores offset repeats its page, which ends the loop
        try:
            found = client.search_for_studies(search_filters=query, limit=QIDO_PAGE, offset=offset)
        except Exception as exc:  # requests' connection / HTTP errors, or a malformed answer
            raise _unreachable(url, exc) from None
        page = [(item, _json_value(item, "0020000D")) for item in found]
        fresh = [(item, uid) for item, uid in page if uid and uid not in seen]
        studies += _listed(client, fresh)
        seen.update(uid for _, uid in fresh)
        if len(page) < QIDO_PAGE or not fresh:
            return sorted(studies, key=lambda s: s.key)
        offset += len(page)


def _listed(client: Any, found: list[tuple[dict, str]]) -> list[StudyInput]:
    studies = []
    for item, uid in found:
        n = _json_value(item, "00201208")  # NumberOfStudyRelatedInstances
        studies.append(
            StudyInput(
                study_key(uid),
                load=_study_loader(client, uid),
                n_images_hint=int(n) if isinstance(n, (int, float, str)) and str(n).isdigit() else None,
            )
        )
    return studies


def _json_value(item: dict, tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _study_loader(client: Any, study_uid: str):
    def load() -> list[Instance]:
        from pydicom import Dataset

        metadata = client.retrieve_study_metadata(study_uid)
        instances = []
        for item in metadata:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = Dataset.from_json(item)
            instances.append(Instance(header, fetch=_instance_fetcher(client, header)))
        return instances

    return load


def _instance_fetcher(client: Any, header: Any):
    def fetch() -> bytes:
        from pydicom import dcmwrite

        ds = client.retrieve_instance(
            str(header.StudyInstanceUID), str(header.SeriesInstanceUID), str(header.SOPInstanceUID)
        )
        buffer = BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()

    return fetch


def open_source(
    source: str, *, filters: DicomWebFilters | None = None, images_per_folder: bool = False
) -> list[StudyInput]:
    """A URL (http/https: a DICOMweb root), a manifest file (.csv / .jsonl) or a folder."""
    if source.startswith(("http://", "https://")):
        return dicomweb_studies(source, filters)
    path = Path(source)
    if path.is_file():
        return manifest_studies(path)
    if path.is_dir():
        return folder_studies(path, images_per_folder=images_per_folder)
    raise SourceError(
        f"{source}: no such folder or manifest file, and not a DICOMweb URL (http://...); "
        "give a folder of DICOM / PNG / JPEG files, a study manifest (.csv / .jsonl) or a PACS's DICOMweb root"
    )


def shard(studies: Sequence[StudyInput], rank: int, world_size: int) -> list[StudyInput]:
    """This process's share of the studies: every ``world_size``-th from ``rank``, in key order.

    >>> [s.key for s in shard([StudyInput(str(i)) for i in range(5)], 1, 2)]
    ['1', '3']
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise SourceError(f"rank {rank} is outside a world of {world_size} processes (RANK / WORLD_SIZE)")
    return list(studies[rank::world_size])
