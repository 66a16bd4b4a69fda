"""Mention vocabulary of the CheXpert-style labeler: which words name which observation.

The base is the CheXpert labeler's phrase lists (``phrases/``, MIT, notice kept). On top of them this
module adds, removes and re-types phrases for the wording of Open-I and MIMIC reports; every change
says why. A mention is one of three kinds:

* ``strong``: the phrase names the finding itself ("effusion", "cardiomegaly"); present unless negated
  or hedged.
* ``anatomical``: the phrase names a structure whose size is the finding ("heart size", "mediastinal
  contours"). It counts only with a size descriptor in its clause (enlarged / normal / borderline);
  "pacemaker overlies the heart" says nothing about cardiomegaly. (CheXpert counts any unnegated
  "the heart" as positive Cardiomegaly; we do not.)
* ``other``: findings outside the 14 observations (CheXpert's ``no_finding`` list: emphysema,
  granuloma, degenerative change, ...). They are matched only so that their words are consumed and
  cannot be mislabelled; they never make a label and do not block "No Finding".

Decisions on Open-I wording (validated against NegBio's expert labels, docs/results/labeler.md):
calcified granulomas / calcified nodules are not a Lung Lesion (CheXpert's rule; IU annotators code
them as "Calcified Granuloma", not "Nodule"); "hyperinflated", "degenerative changes", "tortuous aorta",
"low lung volumes" are no observation; sequelae of old granulomatous infection are not Pneumonia.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from eclip_core.errors import EClipError

STRONG = "strong"
ANATOMICAL = "anatomical"
OTHER = "other"
UNMENTION = "unmention"

_FILE_OBSERVATION = {
    "atelectasis": "Atelectasis",
    "cardiomegaly": "Cardiomegaly",
    "consolidation": "Consolidation",
    "edema": "Edema",
    "enlarged_cardiomediastinum": "Enlarged Cardiomediastinum",
    "fracture": "Fracture",
    "lung_lesion": "Lung Lesion",
    "lung_opacity": "Lung Opacity",
    "pleural_effusion": "Pleural Effusion",
    "pleural_other": "Pleural Other",
    "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax",
    "support_devices": "Support Devices",
}

# CheXpert phrases we drop, with the reason. Anatomical ones come back below as ANATOMICAL.
_REMOVE: dict[str, set[str]] = {
    # Structures, not findings: re-typed as anatomical (need a size descriptor).
    "Cardiomegaly": {
        "the heart",
        "heart size",
        "cardiac size",
        "cardiac shadow",
        "cardiac contour",
        "cardiac silhouette",
    },
    "Enlarged Cardiomediastinum": {
        " mediastinum",
        "cardiomediastinum",
        "contour",
        "mediastinal configuration",
        "mediastinal silhouette",
        "pericardial silhouette",
        "cardiac silhouette and vascularity",
    },
    # "collapse" also names vertebral collapse; lung collapse is re-added with a lung word.
    "Atelectasis": {"collapse"},
    # Substring matching makes "tube" hit "tuberculosis", "marker" hit nipple markers, "support" hit
    # "to support the diagnosis", "plate" hit "platelike atelectasis"; re-added as whole words below.
    "Support Devices": {
        "tube",
        "marker",
        "support",
        "plate",
        "lines",
        " line ",
        "valve",
        "coil",
        "device",
        "icd",
        "pacer",
        "screw",
        "drain ",
    },
    # "Pulmonary vascular congestion" and "vascular prominence" are coded by IU annotators (and by
    # radiologists) as congestion, not oedema; keeping them as Edema made most Edema false positives.
    "Edema": {"vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence"},
    # "infection" alone mostly appears as "prior granulomatous infection" in Open-I; re-added with context.
    "Pneumonia": {"infection", "infectious"},
    # IU annotators code "nodular opacity / density" as an Opacity, not a Nodule (most of these were
    # Lung Lesion false positives against the Open-I gold); re-typed as Lung Opacity below.
    "Lung Lesion": {
        "nodular density",
        "nodular densities",
        "nodular opacity",
        "nodular opacities",
        "nodular opacification",
        "nodule",
        "mass",
    },
}

# CheXpert unmention phrases we drop: IU annotators code calcified nodules as "Nodule/calcified".
_REMOVE_UNMENTION = {"calcified nodul"}

# Additions as raw regular expressions (matched on lower-cased text at a word start).
_ADD: dict[str, list[tuple[str, str]]] = {
    "Cardiomegaly": [
        (STRONG, r"enlarged (?:cardiac silhouette|heart|cardiac shadow)"),
        (STRONG, r"enlargement of the (?:cardiac silhouette|heart|cardiac shadow)"),
        (STRONG, r"cardiomegal\w*"),
        (ANATOMICAL, r"(?:the )?(?:heart|cardiac) (?:size|silhouette|shadow|contours?|outline|borders?|diameter)"),
        (ANATOMICAL, r"(?:the )?heart\b"),
    ],
    "Enlarged Cardiomediastinum": [
        (STRONG, r"(?:mediastinal|superior mediastinal) (?:widening|enlargement)"),
        (STRONG, r"widen(?:ed|ing) (?:of the )?(?:superior )?mediastin\w*"),
        (ANATOMICAL, r"cardio ?mediastin\w*(?: (?:silhouette|contours?|structures|shadow|width))?"),
        (
            ANATOMICAL,
            r"(?:superior )?mediastin\w*(?: (?:silhouette|contours?|structures|shadow|width|"
            r"configuration))?",
        ),
        (ANATOMICAL, r"pericardial silhouette"),
    ],
    "Atelectasis": [
        (STRONG, r"(?:lung|lobe|lobar|segmental|subsegmental) collapse"),
        (STRONG, r"collapse of the (?:\w+ ){0,3}(?:lung|lobe|segment)"),
        (STRONG, r"collapsed (?:lung|lobe)"),
    ],
    "Pleural Effusion": [
        (STRONG, r"effusions?"),
        (STRONG, r"hydrothora\w*"),
        (STRONG, r"fluid in the (?:\w+ )?fissure"),
    ],
    "Pneumothorax": [(STRONG, r"pneumothora\w*"), (STRONG, r"hydropneumothora\w*")],
    "Pneumonia": [
        (STRONG, r"pneumonia\w*"),
        (STRONG, r"bronchopneumonia"),
        (STRONG, r"pneumonitis"),  # IU annotators code "consistent with pneumonitis" as Pneumonia
        (STRONG, r"(?:acute |active |superimposed |pulmonary |lung |chest )?infections?"),
        (STRONG, r"infectious (?:process|etiology|infiltrate)"),
    ],
    "Edema": [(STRONG, r"oedema"), (STRONG, r"congestive failure")],
    "Lung Opacity": [
        (STRONG, r"hazy|haziness"),
        (STRONG, r"airspace (?:process|opacit\w*|filling)"),
        (STRONG, r"(?:increased|patchy|streaky|hazy|ill-defined|alveolar) densit(?:y|ies)"),
        (STRONG, r"(?:\w+ )?nodular (?:densit(?:y|ies)|opacit(?:y|ies)|opacification|infiltrates?)"),
    ],
    "Lung Lesion": [
        (STRONG, r"mass(?:es)?\b"),
        (STRONG, r"masslike|mass-like"),
        (STRONG, r"nodules?\b"),
        (STRONG, r"(?:micro|macro)?nodules?\b"),
        (STRONG, r"(?:lung|pulmonary|cavitary|spiculated) lesions?"),
        (STRONG, r"cavitation"),
    ],
    "Pleural Other": [
        (STRONG, r"pleural (?:thickening|plaques?|calcifications?|scarring)"),
        (STRONG, r"(?:pleural|pleuroparenchymal|pleural-parenchymal|apical) (?:thickening|scar\w*)"),
    ],
    "Fracture": [(STRONG, r"fractur\w*"), (STRONG, r"fx\b")],
    "Support Devices": [
        (
            STRONG,
            r"(?:endotracheal|et|ng|og|nasogastric|orogastric|feeding|chest|tracheostomy|enteric|"
            r"dobhoff|gastric|drainage|thoracostomy) tubes?\b",
        ),
        (STRONG, r"tubes?\b"),
        (STRONG, r"tubing\b"),
        (STRONG, r"(?:central|venous|picc|midline|swan|arterial|jugular|subclavian|catheter) lines?\b"),
        (STRONG, r"lines?\b"),
        (STRONG, r"pace(?:r|maker)s?\b"),
        (STRONG, r"(?:a)?icds?\b"),
        (STRONG, r"defibrillators?\b"),
        (STRONG, r"(?:cardiac |prosthetic |mitral |aortic )?valve (?:replacement|prosthes[ie]s)\b"),
        (STRONG, r"(?:prosthetic|mechanical|replaced) (?:\w+ )?valves?\b"),
        (STRONG, r"(?:sternotomy|sternal|cerclage) wires?\b"),
        (STRONG, r"(?:median )?sternotomy\b"),
        (STRONG, r"wires\b"),
        (STRONG, r"(?:surgical|vascular|cholecystectomy) clips?\b"),
        (STRONG, r"clips\b"),
        (STRONG, r"stents?\b"),
        (STRONG, r"staples\b"),
        (STRONG, r"(?:embolization )?coils?\b"),
        (STRONG, r"ports?\b(?! of)"),
        (STRONG, r"port-?a-?cath\w*"),
        (STRONG, r"leads?\b(?! to)"),
        (STRONG, r"generators?\b"),
        (STRONG, r"devices?\b"),
        (STRONG, r"screws?\b"),
        (STRONG, r"plates?\b"),
        (STRONG, r"drains?\b"),
        (STRONG, r"shunts?\b"),
        (STRONG, r"pump\b"),
        (STRONG, r"(?:lap )?band\b"),
        (STRONG, r"prosthes[ie]s\b"),
        (STRONG, r"(?:orthopedic |spinal |fixation )?rods?\b"),
    ],
}

# Phrases that look like a mention but are not (matched first, so their words are consumed).
_UNMENTION_EXTRA = [
    # Calcified granulomas are healed granulomatous disease, not a lesion (CheXpert and IU agree).
    # "Calcified nodule" stays a Lung Lesion: IU annotators code it "Nodule/calcified" (CheXpert would not).
    r"calcified (?:\w+ )?(?:granulom\w*|lymph nodes?|densit\w*)",
    r"nodular (?:calcifications?|granulom\w*)",
    r"granulom\w*",
    r"(?:prior|previous|old|remote|healed|chronic) (?:\w+ ){0,2}infections?",
    r"granulomatous (?:infection|disease|process|exposure)",
    r"pericardial effusions?",
    r"(?:soft tissue|subcutaneous|extremity|facial) (?:edema|oedema)",
    r"(?:septal|kerley\w*(?: b)?|pleural|skin ?fold|azygo\w*|paraspinal|paratracheal|junction|fissure) lines?\b",
    r"(?:line|lines) of (?:the )?(?:diaphragm|fissure)",
    r"mid ?line\b",
    r"midlines?\b",
    r"(?:soft tissue|breast|nipple) (?:shadows?|markers?)",
    r"massive(?:ly)?",
    r"lead to\b",
    r"leads? to\b",
    r"mass effect",
]

# "heart failure" / "chf" are CheXpert Edema mentions; listed here explicitly to out-rank "heart".
_EDEMA_PRIORITY = [r"(?:congestive )?heart failure", r"chf\b"]


@dataclass(frozen=True)
class Phrase:
    """One mention pattern: its observation (None for other findings / unmentions) and kind."""

    pattern: str
    observation: str | None
    kind: str


def _phrase_to_regex(phrase: str) -> str:
    """CheXpert phrase -> regex: `_` is a space; leading `_` is a word start, trailing `_` a word end."""
    core = phrase.strip("_").replace("_", " ")
    rx = re.escape(core).replace(r"\ ", " ")
    if phrase.endswith("_"):
        return rx + r"\b"
    return rx + r"\w*"


def _read_list(kind: str, stem: str) -> list[str]:
    folder = resources.files("eclip_core.labeler").joinpath("phrases", kind)
    if not folder.is_dir():
        # A packaging mistake must not silently shrink the vocabulary.
        raise EClipError(
            f"the labeler's phrase lists are missing ({folder}); reinstall the package with its "
            "package data (eclip_core/labeler/phrases/*/*.txt)"
        )
    try:
        text = folder.joinpath(f"{stem}.txt").read_text("utf-8")
    except FileNotFoundError:  # CheXpert has unmention lists for three observations only
        return []
    return [ln.rstrip("\n") for ln in text.splitlines() if ln.strip()]


@functools.lru_cache(maxsize=1)
def phrases() -> tuple[Phrase, ...]:
    """Every mention pattern, CheXpert's lists plus this module's edits.

    >>> any(p.observation == "Pneumothorax" for p in phrases())
    True
    """
    out: list[Phrase] = []
    for stem, obs in _FILE_OBSERVATION.items():
        removed = _REMOVE.get(obs, set())
        for ph in _read_list("mention", stem):
            if ph.replace("_", " ") in removed or ph.replace("_", " ").strip() in removed:
                continue
            out.append(Phrase(_phrase_to_regex(ph), obs, STRONG))
        for ph in _read_list("unmention", stem):
            if ph.replace("_", " ").strip() in _REMOVE_UNMENTION:
                continue
            out.append(Phrase(_phrase_to_regex(ph), None, UNMENTION))
    for obs, items in _ADD.items():
        out.extend(Phrase(rx, obs, kind) for kind, rx in items)
    for ph in _read_list("mention", "no_finding"):
        out.append(Phrase(_phrase_to_regex(ph), None, OTHER))
    out.extend(Phrase(rx, None, UNMENTION) for rx in _UNMENTION_EXTRA)
    out.extend(Phrase(rx, "Edema", STRONG) for rx in _EDEMA_PRIORITY)
    return tuple(out)


def _sort_key(p: Phrase) -> tuple[int, int]:
    # Longest literal first, so that at one position "pleural thickening" beats "thickening";
    # unmentions first among equals.
    literal = re.sub(r"\\.|[()?:*+|\[\]{}^$]", "", p.pattern)
    return (-len(literal), 0 if p.kind == UNMENTION else 1)


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[re.Pattern[str], tuple[Phrase, ...], tuple[re.Pattern[str], ...]]:
    table = tuple(sorted(phrases(), key=_sort_key))
    # No capture groups in the big alternation: one named group per phrase is far slower (the "mention
    # search" rows of docs/perf/labeler.md).
    big = re.compile(r"(?<![\w-])(?:" + "|".join(f"(?:{p.pattern})" for p in table) + ")")
    singles = tuple(re.compile(f"(?:{p.pattern})") for p in table)
    return big, table, singles


_WHICH_CACHE: dict[str, int] = {}


def find_mentions(text: str):
    """Yield (start, end, Phrase) for every mention in lower-cased ``text``, leftmost-longest.

    Scanning left to right with longest-first alternatives gives leftmost-longest matches, so an
    unmention or other-finding phrase that starts earlier consumes its words.

    >>> [(p.observation, s, e) for s, e, p in find_mentions("no pneumothorax")]
    [('Pneumothorax', 3, 15)]
    """
    big, table, singles = _compiled()
    for m in big.finditer(text):
        start, end = m.span()
        key = m.group(0)
        idx = _WHICH_CACHE.get(key)
        if idx is None:
            # The alternation picked the first alternative that matches here: find it.
            idx = next(i for i, rx in enumerate(singles) if (mm := rx.match(text, start)) and mm.end() == end)
            _WHICH_CACHE[key] = idx
        yield start, end, table[idx]


__all__ = ["Phrase", "phrases", "find_mentions", "STRONG", "ANATOMICAL", "OTHER", "UNMENTION"]
