"""The draft checker: every mode's draft, after hygiene, agrees with the image and with itself.

:func:`check_draft` takes a drafter's sentences (each citing its report) and returns the sentences that may
stand, with a :class:`~rag_report.report.SentenceCheck` per input sentence saying what happened to it:

1. hygiene, once more, on the final text (:mod:`rag_report.drafting.hygiene`: comparison words, views not given, list
   numbering, cut sentences, other body regions ...): rewritten in place or dropped (free-mode text and any
   drafter's output pass the same filter as the evidence sentences);
2. the image: a sentence that asserts (or calls possible) an observation the label classifiers give a very
   low probability, or denies one they give a very high probability (:class:`CheckThresholds`, chosen on the
   validation split), is replaced by the first clean sentence of the retrieved reports, same section first,
   that states the observation the way the image says, or dropped;
3. the impression agrees with the findings: every observation an impression sentence calls present or
   possible is stated in the findings or predicted from the image (a related observation counts: an
   opacity for a pneumonia, an enlarged cardiomediastinal silhouette for cardiomegaly), else the sentence
   goes (without label classifiers there is no prediction to check against, and the step is skipped: a
   finding the findings deny is then settled by step 4, which keeps the impression);
4. the draft agrees with itself: a sentence that denies what another sentence asserts ("The heart size and
   pulmonary vascularity appear within normal limits." beside "Pulmonary vascular congestion.") goes.

>>> from types import SimpleNamespace as R
>>> from rag_report.drafting.consensus import SourcedSentence as S
>>> from eclip_core.labeler import sentence_observations as obs
>>> draft = [S("The heart is again mildly enlarged.", "findings", ["A"]),
...          S("The heart size and pulmonary vascularity appear within normal limits.", "findings", ["B"]),
...          S("Cardiomegaly, question small bilateral pleural effusions 2.", "impression", ["A"])]
>>> kept, checks = check_draft(draft, [], observations=obs, predicted={"Pleural Effusion": False})
>>> [s.text for s in kept]
['The heart is mildly enlarged.']
>>> [c.action for c in checks]
['rewritten', 'dropped', 'dropped']
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from eclip_core.labels import CHEXPERT_OBSERVATIONS
from eclip_core.text import split_sentences
from rag_report.drafting.consensus import ObservationsFn, SourcedSentence
from rag_report.drafting.hygiene import clean_sentence, why_not
from rag_report.errors import RagReportError
from rag_report.protocols import ReportLike
from rag_report.report import SentenceCheck

#: Pseudo-observations the checker reads beside the labeler's (the labeler has no "vascularity" and keeps
#: heart size apart from the cardiomediastinal silhouette).
HEART_SIZE = "Heart Size"
VASCULARITY = "Pulmonary Vascularity"
_VASCULAR_UP = re.compile(
    r"\b(?:vascular\s+congestion|congestion|engorge\w*|cephalization|vascular\s+(?:prominence|redistribution)|"
    r"(?:vascularity|vasculature|vascular\s+markings)\s+(?:is|are|appears?)?\s*(?:mildly\s+|slightly\s+)?"
    r"(?:increased|accentuated|prominent|engorged|congested))\b",
    re.IGNORECASE,
)
_VASCULAR_NORMAL = re.compile(
    r"\b(?:vascularity|vasculature)\b[^.]*\b(?:normal|within normal limits|unremarkable)\b"
    r"|\b(?:no|without)\s+(?:\w+\s+){0,3}(?:vascular\s+)?congestion\b",
    re.IGNORECASE,
)
_CARDIAC = re.compile(r"\bcardi|\bheart\b", re.IGNORECASE)
#: A whole-study normal statement ("Normal chest.", "Unremarkable radiographs of the chest."): it denies
#: every finding ("No acute disease." does not: a chronic finding may stand beside it).
ABNORMALITY = "Abnormality"
_NORMAL_STUDY = re.compile(
    r"^\s*(?:normal|unremarkable|negative)\s+(?:chest|stud(?:y|ies)|exam(?:ination)?s?|radiographs?|films?)\b",
    re.IGNORECASE,
)
_NOT_A_FINDING = {"No Finding", "Support Devices"}
#: Observations that state one another for the impression rule (the CheXpert hierarchy: an opacity is the
#: parent of consolidation, pneumonia, atelectasis, edema and a lesion; heart size of the silhouette).
RELATED: dict[str, frozenset[str]] = {
    "Cardiomegaly": frozenset({HEART_SIZE, "Enlarged Cardiomediastinum"}),
    "Enlarged Cardiomediastinum": frozenset({HEART_SIZE, "Cardiomegaly"}),
    HEART_SIZE: frozenset({"Cardiomegaly", "Enlarged Cardiomediastinum"}),
    "Edema": frozenset({VASCULARITY, "Lung Opacity"}),
    VASCULARITY: frozenset({"Edema"}),
    "Lung Opacity": frozenset({"Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion"}),
    "Consolidation": frozenset({"Pneumonia", "Lung Opacity"}),
    "Pneumonia": frozenset({"Consolidation", "Lung Opacity"}),
    "Atelectasis": frozenset({"Lung Opacity"}),
    "Lung Lesion": frozenset({"Lung Opacity"}),
    "Pleural Effusion": frozenset({"Pleural Other"}),
    "Pleural Other": frozenset({"Pleural Effusion"}),
}


@dataclass
class CheckThresholds:
    """When the image contradicts a sentence: asserting observation ``o`` with a predicted probability below
    ``assert_floor[o]``, or denying it above ``deny_ceiling[o]`` (an observation missing from a dict is not
    checked that way). ``how`` says how the values were chosen (:func:`choose_thresholds`)."""

    assert_floor: dict[str, float] = field(default_factory=dict)
    deny_ceiling: dict[str, float] = field(default_factory=dict)
    how: str = ""


def choose_thresholds(
    probabilities: np.ndarray,
    label_rows: np.ndarray,
    *,
    miss: float = 0.02,
    min_count: int = 10,
    observations: Sequence[str] = CHEXPERT_OBSERVATIONS,
) -> CheckThresholds:
    """Thresholds from validation studies: ``probabilities`` [n, L] of the label classifiers and the
    studies' report labels ``label_rows`` [n, L] (1 positive; 0, -1 or NaN not).

    ``assert_floor[o]`` is the ``miss`` quantile of the probabilities of the studies whose report states
    ``o`` (so the check removes at most that share of true statements of ``o`` on validation), and
    ``deny_ceiling[o]`` the ``1 - miss`` quantile of those of the studies whose report does not (at most that
    share of true denials). An observation with fewer than ``min_count`` such studies is not checked.

    >>> p = np.array([[0.1], [0.2], [0.3], [0.8], [0.9]]); y = np.array([[0.], [0.], [0.], [1.], [1.]])
    >>> t = choose_thresholds(p, y, miss=0.0, min_count=2, observations=["Cardiomegaly"])
    >>> t.assert_floor, t.deny_ceiling
    ({'Cardiomegaly': 0.8}, {'Cardiomegaly': 0.3})
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(label_rows) == 1.0
    floor, ceiling = {}, {}
    for j, name in enumerate(observations):
        pos, neg = p[y[:, j], j], p[~y[:, j], j]
        if len(pos) >= min_count:
            floor[name] = round(float(np.quantile(pos, miss, method="lower")), 4)
        if len(neg) >= min_count:
            ceiling[name] = round(float(np.quantile(neg, 1.0 - miss, method="higher")), 4)
    how = (
        f"validation split, {len(p)} studies: assert_floor = {miss:.0%} quantile of the predicted probability "
        f"over the studies whose report states the observation, deny_ceiling = {1 - miss:.0%} quantile over "
        f"those whose report does not; observations with fewer than {min_count} such studies are not checked"
    )
    return CheckThresholds(floor, ceiling, how)


#: Without thresholds of its index the image step is off. The default bundle chooses its own on its val
#: split when it is built (:func:`rag_report.bundle.write_checker_thresholds`); any index gets them with
#: ``python -m eval.bench.drafting.checker_thresholds --model DIR --index DIR --manifest M --write``. Both store
#: :data:`THRESHOLDS_FILE` in the index folder, where the pipeline reads it (:func:`index_thresholds`).
DEFAULT_THRESHOLDS = CheckThresholds(how="none chosen: the image check is off")
#: The file in an index folder that holds its checker thresholds (:func:`save_thresholds`).
THRESHOLDS_FILE = "checker_thresholds.json"


def save_thresholds(thresholds: CheckThresholds, path: str | os.PathLike) -> None:
    """Write ``thresholds`` as JSON (atomically)."""
    from eclip_core.atomic import atomic_path

    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(asdict(thresholds), indent=1), encoding="utf-8")


def load_thresholds(path: str | os.PathLike) -> CheckThresholds:
    """Read thresholds written by :func:`save_thresholds`; RagReportError naming the file when unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return CheckThresholds(
            {str(k): float(v) for k, v in data["assert_floor"].items()},
            {str(k): float(v) for k, v in data["deny_ceiling"].items()},
            str(data.get("how", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RagReportError(
            f"checker thresholds {path} are unreadable ({exc}); rewrite them with "
            "`python -m eval.bench.drafting.checker_thresholds --write` or delete the file"
        ) from exc


def index_thresholds(index_dir: str | os.PathLike, default_bundle: bool) -> CheckThresholds:
    """The checker thresholds of an index: its :data:`THRESHOLDS_FILE`, else :data:`DEFAULT_THRESHOLDS` for
    the default bundle, else none (the image step off)."""
    path = Path(index_dir) / THRESHOLDS_FILE
    if path.is_file():
        return load_thresholds(path)
    return DEFAULT_THRESHOLDS if default_bundle else CheckThresholds(how="none for this index: image check off")


@dataclass
class CheckerConfig:
    """What the checker checks (each step can be switched off; the image step also needs probabilities)."""

    thresholds: CheckThresholds = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    hygiene: bool = True
    image: bool = True
    impression: bool = True
    consistency: bool = True


def claims(sentence: str, observations: ObservationsFn) -> dict[str, float]:
    """What a sentence states: the labeler's observations (1.0 present, -1.0 possible, 0.0 absent) plus
    heart size (cardiomegaly, or a cardiac silhouette called enlarged or normal), pulmonary vascularity
    (congestion vs normal vascularity, or edema) and an abnormality (any finding, vs a normal study).

    >>> from eclip_core.labeler import sentence_observations as obs
    >>> claims("The heart size and pulmonary vascularity appear within normal limits.", obs)
    {'Cardiomegaly': 0.0, 'Heart Size': 0.0, 'Pulmonary Vascularity': 0.0}
    """
    out = dict(observations(sentence))
    ec = out.get("Enlarged Cardiomediastinum")
    if "Cardiomegaly" in out:
        out[HEART_SIZE] = out["Cardiomegaly"]
    elif ec is not None and _CARDIAC.search(sentence):
        out[HEART_SIZE] = ec
    if _NORMAL_STUDY.search(sentence):
        out[ABNORMALITY] = 0.0
    elif any(_asserted(v) for o, v in out.items() if o in CHEXPERT_OBSERVATIONS and o not in _NOT_A_FINDING):
        out[ABNORMALITY] = 1.0
    if _VASCULAR_NORMAL.search(sentence):
        out[VASCULARITY] = 0.0
    elif _VASCULAR_UP.search(sentence) or out.get("Edema") in (1.0, -1.0):
        out[VASCULARITY] = 1.0
    return out


def _asserted(value: float | None) -> bool:
    return value in (1.0, -1.0)


@dataclass
class _Line:
    """A sentence in work: its current text (None once dropped) and its check record."""

    sentence: SourcedSentence
    check: SentenceCheck
    claims: dict[str, float]

    @property
    def alive(self) -> bool:
        return self.check.action != "dropped"

    def drop(self, reason: str) -> None:
        self.check.action, self.check.reason, self.check.result, self.check.source_ids = "dropped", reason, "", []


def _contradiction(
    found: Mapping[str, float], probabilities: Mapping[str, float], thresholds: CheckThresholds
) -> tuple[str, float] | None:
    """(observation, the polarity the image gives it) for the first claim the image contradicts, or None."""
    for name, value in found.items():
        p = probabilities.get(name)
        if p is None:
            continue
        floor, ceiling = thresholds.assert_floor.get(name), thresholds.deny_ceiling.get(name)
        if _asserted(value) and floor is not None and p < floor:
            return name, 0.0
        if value == 0.0 and ceiling is not None and p > ceiling:
            return name, 1.0
    return None


def _replacement(
    line: _Line,
    want: tuple[str, float],
    reports: Sequence[ReportLike],
    used: set[str],
    observations: ObservationsFn,
    probabilities: Mapping[str, float],
    predicted: Mapping[str, bool] | None,
    thresholds: CheckThresholds,
) -> tuple[str, str] | None:
    """(sentence, report id): the first clean sentence of ``reports`` (the line's section first) that states
    the observation as the image does, contradicts the image on nothing and asserts nothing the image does
    not predict."""
    name, value = want
    sections = [line.sentence.section] + [s for s in ("findings", "impression") if s != line.sentence.section]
    for section in sections:
        for report in reports:
            for raw in split_sentences(getattr(report, section, "") or ""):
                clean = clean_sentence(raw)
                if clean is None or clean.lower() in used:
                    continue
                found = claims(clean, observations)
                if found.get(name) != value or _contradiction(found, probabilities, thresholds) is not None:
                    continue
                others = [o for o, v in found.items() if _asserted(v) and o != name and o in probabilities]
                if any(not (predicted or {}).get(o) for o in others):
                    continue
                return clean, str(report.study_id)
    return None


def _stated_or_predicted(name: str, findings: Mapping[str, float], predicted: Mapping[str, bool] | None) -> bool:
    group = {name} | RELATED.get(name, frozenset())
    if any(_asserted(findings.get(o)) for o in group):
        return True
    return bool(predicted) and any(bool(predicted.get(o)) for o in group)  # type: ignore[union-attr]


def check_draft(
    sentences: Sequence[SourcedSentence],
    reports: Sequence[ReportLike],
    *,
    observations: ObservationsFn,
    probabilities: Mapping[str, float] | None = None,
    predicted: Mapping[str, bool] | None = None,
    config: CheckerConfig | None = None,
) -> tuple[list[SourcedSentence], list[SentenceCheck]]:
    """The sentences that stand and what the checker did to each input sentence (module docstring).

    ``reports`` are the retrieved reports (replacements come from them), ``probabilities`` the label
    classifiers' probability per observation (None: no image step), ``predicted`` the observations
    predicted present at the classifiers' thresholds (None: the impression may only state what the
    findings state).
    """
    cfg = config or CheckerConfig()
    lines: list[_Line] = []
    for s in sentences:
        check = SentenceCheck(s.text, s.section, "kept", result=s.text, source_ids=list(s.source_ids))
        lines.append(_Line(s, check, {}))
    for line in lines:  # 1. hygiene
        if not cfg.hygiene:
            break
        clean = clean_sentence(line.sentence.text)
        if clean is None:
            line.drop(why_not(line.sentence.text))
        elif clean != line.sentence.text:
            line.check.action, line.check.reason, line.check.result = "rewritten", "hygiene", clean
    used = {ln.check.result.lower() for ln in lines if ln.alive}
    for line in lines:
        line.claims = claims(line.check.result, observations) if line.alive else {}
    if cfg.image and probabilities:  # 2. the image
        for line in lines:
            bad = _contradiction(line.claims, probabilities, cfg.thresholds) if line.alive else None
            if bad is None:
                continue
            name, value = bad
            p = probabilities[name]
            why = f"{'denies' if value else 'asserts'} {name} (image probability {p:.3f})"
            found = _replacement(line, bad, reports, used, observations, probabilities, predicted, cfg.thresholds)
            if found is None:
                line.drop(why)
                continue
            text, source = found
            line.check.action, line.check.reason = "replaced", why
            line.check.result, line.check.source_ids = text, [source]
            line.claims = claims(text, observations)
            used.add(text.lower())
    if cfg.impression and predicted is not None:  # 3. the impression agrees with the findings
        findings: dict[str, float] = {}
        for line in lines:
            if line.alive and line.sentence.section == "findings":
                for o, v in line.claims.items():
                    if _asserted(v) or o not in findings:
                        findings[o] = v
        for line in lines:
            if not line.alive or line.sentence.section != "impression":
                continue
            called = [o for o, v in line.claims.items() if _asserted(v) and o in CHEXPERT_OBSERVATIONS]
            called = [o for o in called if o != "No Finding" and not _stated_or_predicted(o, findings, predicted)]
            if called:
                line.drop(f"impression states {', '.join(called)}: not in the findings, not predicted")
    if cfg.consistency:  # 4. no sentence denies what another asserts
        for line in lines:
            if not line.alive:
                continue
            denied = [
                o
                for o, v in line.claims.items()
                if v == 0.0
                and any(other is not line and other.alive and _asserted(other.claims.get(o)) for other in lines)
            ]
            if denied:
                line.drop(f"denies {', '.join(denied)} that another sentence states")
    kept = [
        SourcedSentence(ln.check.result, ln.sentence.section, list(ln.check.source_ids), ln.sentence.support)
        for ln in lines
        if ln.alive
    ]
    return kept, [ln.check for ln in lines]
