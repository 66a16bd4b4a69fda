"""Structured findings of one study, from its expert MeSH codes and its report text.

MeSH codes in Open-I follow a grammar ``Term/organ/location/side/severity`` (any part after the term
optional, in varying order), e.g. ``Opacity/lung/upper lobe/right/round`` or ``Cardiomegaly/mild``.
They are the annotators' record of what is *present*, so each code that maps to a renderable kind
becomes a :class:`Finding`. The report text adds positive findings the codes lack: every sentence goes
through the project's one CheXpert-style labeler (:func:`eclip_core.labeler.sentence_observations`),
so a negated mention ("no pneumothorax") or an uncertain one ("cannot exclude pneumonia") renders
nothing; side, location and size of a positive sentence are read from its words.

>>> fs = findings_from_mesh(["Pleural Effusion/left/small", "Cardiomegaly/mild", "normal"])
>>> [(f.kind, f.side, f.severity) for f in fs]
[('cardiomegaly', '', 0.45), ('effusion', 'left', 0.35)]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from eclip_core.text import split_sentences

log = logging.getLogger(__name__)

#: Every kind the renderer draws, in a fixed order (also the order findings are drawn in).
KINDS: tuple[str, ...] = (
    "low_volumes",
    "hyperinflation",
    "elevated_diaphragm",
    "cardiomegaly",
    "mediastinum",
    "aorta",
    "aortic_calcification",
    "edema",
    "effusion",
    "pneumothorax",
    "opacity",
    "atelectasis",
    "nodule",
    "mass",
    "granuloma",
    "hilar_calcification",
    "scoliosis",
    "spine_degenerative",
    "fracture",
    "hiatal_hernia",
    "sternotomy",
    "pacemaker",
    "central_line",
    "tube",
    "clips",
)

_SEVERITY_WORDS = {
    "borderline": 0.25,
    "minimal": 0.25,
    "trace": 0.2,
    "tiny": 0.25,
    "small": 0.35,
    "mild": 0.45,
    "moderate": 0.65,
    "large": 0.9,
    "severe": 0.9,
    "marked": 0.85,
    "massive": 1.0,
    "prominent": 0.5,
    "enlarged": 0.6,
}
_LOCATION_WORDS = {
    "upper lobe": "upper",
    "apex": "upper",
    "apical": "upper",
    "upper": "upper",
    "middle lobe": "middle",
    "lingula": "lingula",
    "hilum": "hilum",
    "hilar": "hilum",
    "perihilar": "hilum",
    "lower lobe": "lower",
    "base": "base",
    "basilar": "base",
    "bases": "base",
    "basal": "base",
    "lower": "lower",
    "retrocardiac": "lower",
    "midlung": "middle",
    "mid": "middle",
}

# MeSH first term (lower case) -> kind. Terms whose kind depends on later parts are handled in code.
_MESH_TERM_KIND = {
    "cardiomegaly": "cardiomegaly",
    "pleural effusion": "effusion",
    "pneumothorax": "pneumothorax",
    "opacity": "opacity",
    "airspace disease": "opacity",
    "consolidation": "opacity",
    "pneumonia": "opacity",
    "infiltrate": "opacity",
    "density": "opacity",
    "pulmonary fibrosis": "opacity",
    "lung diseases, interstitial": "edema",
    "pulmonary atelectasis": "atelectasis",
    "cicatrix": "atelectasis",
    "volume loss": "atelectasis",
    "nodule": "nodule",
    "mass": "mass",
    "calcified granuloma": "granuloma",
    "granulomatous disease": "granuloma",
    "granuloma": "granuloma",
    "pulmonary edema": "edema",
    "pulmonary congestion": "edema",
    "heart failure": "edema",
    "emphysema": "hyperinflation",
    "pulmonary emphysema": "hyperinflation",
    "pulmonary disease, chronic obstructive": "hyperinflation",
    "lung, hyperlucent": "hyperinflation",
    "scoliosis": "scoliosis",
    "osteophyte": "spine_degenerative",
    "spondylosis": "spine_degenerative",
    "hernia, hiatal": "hiatal_hernia",
    "diaphragmatic eventration": "elevated_diaphragm",
    "catheters, indwelling": "central_line",
    "tube, inserted": "tube",
    "implanted medical device": "pacemaker",
    "sutures": "sternotomy",
    "stents": "clips",
    "foreign bodies": "clips",
    "medical device": "clips",
    "fractures, bone": "fracture",
}

# Labeler observation -> kind for findings taken from the report text.
_OBSERVATION_KIND = {
    "Cardiomegaly": "cardiomegaly",
    "Enlarged Cardiomediastinum": "mediastinum",
    "Pleural Effusion": "effusion",
    "Pneumothorax": "pneumothorax",
    "Lung Opacity": "opacity",
    "Consolidation": "opacity",
    "Pneumonia": "opacity",
    "Atelectasis": "atelectasis",
    "Edema": "edema",
    "Fracture": "fracture",
    "Lung Lesion": "nodule",
    "Support Devices": "central_line",
}


@dataclass(frozen=True)
class Finding:
    """One drawable finding: what, where, how big, and where it came from."""

    kind: str
    side: str = ""  # "left" | "right" | "bilateral" | "" (patient's side, not the image's)
    location: str = ""  # "upper" | "middle" | "lingula" | "lower" | "base" | "hilum" | ""
    severity: float = 0.5  # 0..1 (borderline ~0.25, mild ~0.45, moderate ~0.65, large/severe ~0.9)
    source: str = "mesh"  # "mesh" | "text"
    term: str = ""  # the MeSH code or the report sentence it came from
    multiple: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _severity(parts: Iterable[str], default: float = 0.5) -> float:
    vals = [_SEVERITY_WORDS[p] for p in parts if p in _SEVERITY_WORDS]
    return max(vals) if vals else default


def _location(text: str) -> str:
    for word, loc in _LOCATION_WORDS.items():
        if re.search(rf"\b{word}\b", text):
            return loc
    return ""


def _side(text: str) -> str:
    left = bool(re.search(r"\bleft\b", text))
    right = bool(re.search(r"\bright\b", text))
    if re.search(r"\bbilateral|\bboth\b|\bbibasilar|\bbibasal|\bbases\b|\blungs\b", text) or (left and right):
        return "bilateral"
    return "left" if left else "right" if right else ""


def _mesh_kind(term: str, rest: list[str]) -> str | None:
    joined = "/".join(rest)
    if term in ("lung",):
        if "hypoinflation" in rest:
            return "low_volumes"
        if "hyperdistention" in rest or "hyperlucent" in joined:
            return "hyperinflation"
        return None
    if term == "diaphragm":
        if "elevated" in rest:
            return "elevated_diaphragm"
        if "flattened" in rest:
            return "hyperinflation"
        return None
    if term in ("cardiac shadow", "heart"):
        return "cardiomegaly" if "enlarged" in rest else None
    if term == "mediastinum":
        return "mediastinum" if ({"enlarged", "prominent", "widened"} & set(rest)) else None
    if term in ("aorta", "aorta, thoracic"):
        return "aorta" if ({"tortuous", "enlarged", "ectatic", "dilatation"} & set(rest)) else None
    if term in ("atherosclerosis", "calcinosis"):
        if "aorta" in joined or "blood vessels" in joined:
            return "aortic_calcification"
        if "hilum" in joined or "lymph nodes" in joined or "mediastinum" in joined:
            return "hilar_calcification"
        if "lung" in joined:
            return "granuloma"
        return None
    if term in ("thoracic vertebrae", "spine", "lumbar vertebrae", "cervical vertebrae"):
        return "spine_degenerative" if ({"degenerative", "osteophyte"} & set(rest)) else None
    if term == "surgical instruments":
        return "sternotomy" if ("mediastinum" in rest or "sternum" in rest or not rest) else "clips"
    if term == "costophrenic angle":
        return "effusion" if "blunted" in rest else None
    if term == "fractures, bone":
        return "fracture" if ("ribs" in rest or "thoracic vertebrae" not in rest) else None
    return _MESH_TERM_KIND.get(term)


def findings_from_mesh(codes: Iterable[str]) -> list[Finding]:
    """Map MeSH codes to findings (codes that draw nothing, like ``normal``, are dropped)."""
    out: list[Finding] = []
    for code in codes:
        parts = [p.strip().lower() for p in code.split("/") if p.strip()]
        if not parts:
            continue
        kind = _mesh_kind(parts[0], parts[1:])
        if kind is None:
            continue
        rest = parts[1:]
        text = " ".join(rest)
        default = 0.5
        if kind == "effusion" and parts[0] == "costophrenic angle":
            default = 0.25  # blunting = a trace of fluid
        if kind == "cardiomegaly":
            default = 0.55
        out.append(
            Finding(
                kind=kind,
                side=_side(text),
                location=_location(text),
                severity=_severity(rest, default),
                source="mesh",
                term=code,
                multiple=bool({"multiple", "scattered"} & set(rest)),
            )
        )
    return _dedupe(out)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per (kind, side, location); keep the most severe."""
    best: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.kind, f.side, f.location)
        if key not in best or f.severity > best[key].severity:
            best[key] = f
    return sorted(best.values(), key=lambda f: (KINDS.index(f.kind), f.side, f.location))


def _sentence_observations():
    """The project's labeler (``eclip_core.labeler``), or None when it is not installed yet."""
    try:
        from eclip_core.labeler import sentence_observations  # noqa: PLC0415
    except ImportError:
        return None
    return sentence_observations


def labeler_available() -> bool:
    return _sentence_observations() is not None


def findings_from_text(text: str) -> list[Finding]:
    """Positive findings of a report text, sentence by sentence through the CheXpert-style labeler.

    Negated (0.0) and uncertain (-1.0) mentions draw nothing. Returns [] when the labeler is missing.
    """
    observe = _sentence_observations()
    if observe is None:
        return []
    out: list[Finding] = []
    for sentence in split_sentences(text):
        obs = observe(sentence)
        low = sentence.lower()
        for name, value in obs.items():
            kind = _OBSERVATION_KIND.get(name)
            if kind is None or value != 1.0:
                continue
            if kind == "central_line":
                if re.search(r"pacemaker|pacer|defibrillator|icd\b|aicd", low):
                    kind = "pacemaker"
                elif re.search(r"sternotomy|sternal wire|cabg", low):
                    kind = "sternotomy"
                elif re.search(r"endotracheal|\bet tube|nasogastric|\bng tube|\btube\b", low):
                    kind = "tube"
                elif re.search(r"clip|stent|staple|surgical", low):
                    kind = "clips"
            if kind == "nodule" and re.search(r"\bmass\b", low):
                kind = "mass"
            out.append(
                Finding(
                    kind=kind,
                    side=_side(low),
                    location=_location(low),
                    severity=_severity(re.findall(r"[a-z]+", low), 0.5),
                    source="text",
                    term=sentence,
                )
            )
    return _dedupe(out)


def study_findings(mesh_codes: Iterable[str], text: str) -> list[Finding]:
    """All findings of a study: every MeSH-derived one, plus text-positive kinds the codes lack."""
    mesh = findings_from_mesh(mesh_codes)
    have = {f.kind for f in mesh}
    extra = [f for f in findings_from_text(text) if f.kind not in have]
    return _dedupe(mesh + extra)


__all__ = ["Finding", "KINDS", "findings_from_mesh", "findings_from_text", "study_findings", "labeler_available"]
