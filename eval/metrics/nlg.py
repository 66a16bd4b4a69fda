"""Report-generation NLG metrics with the numbers papers print: pycocoevalcap as the engine.

BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr(-D as in pycocoevalcap's ``Cider``) are corpus-level scores
from pycocoevalcap 1.2 on text normalised by :func:`eclip_core.text.tokenize_for_metrics` (lower case,
punctuation split off, ``XXXX`` de-identification policy), applied identically to references and
hypotheses. pycocoevalcap's Java PTB tokenizer is *not* used (it strips punctuation and needs another
JVM); the normalisation above is the documented one.

METEOR runs in a Java subprocess (seconds to start, docs/perf/labeler.md): one JVM per process, created on first use and
reused. Without ``java`` on PATH, METEOR is None and a note says why. SPICE is not offered (it needs a
download).

Also: per-sample ROUGE-L F (rouge-score) and sacreBLEU (detokenised, on the normalised text).

>>> scores = compute_nlg(["No pleural effusion."], ["No pleural effusion."], meteor=False)
>>> round(scores["BLEU-1"], 6), round(scores["ROUGE-L"], 6)
(1.0, 1.0)
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import shutil
import threading
from collections.abc import Sequence

from eclip_core.text import normalize_report_text, tokenize_for_metrics

log = logging.getLogger(__name__)

BLEU_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
NLG_KEYS = (*BLEU_KEYS, "METEOR", "ROUGE-L", "CIDEr")
NORMALISATION = "eclip_core.text.tokenize_for_metrics (lower-case, punctuation split, XXXX de-id token)"

_METEOR = None
_METEOR_LOCK = threading.Lock()
_METEOR_ERROR: str | None = None


def _as_ref_lists(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in references]


def prepare(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """pycocoevalcap's input dicts (gts, res) from raw texts, normalised identically.

    >>> prepare(["Heart normal."], ["Heart size normal."])
    ({0: ['heart size normal .']}, {0: ['heart normal .']})
    """
    hypotheses = list(hypotheses)
    refs = _as_ref_lists(references)
    if len(hypotheses) != len(refs):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(refs)} references; they must pair up")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    # '|||' is METEOR's field separator; newlines end its records.
    clean = lambda t: tokenize_for_metrics(t or "").replace("|||", " ").replace("\n", " ")  # noqa: E731
    gts = {i: [clean(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [clean(h)] for i, h in enumerate(hypotheses)}
    for i, rs in gts.items():
        if not any(rs):
            raise ValueError(f"reference {i} is empty after normalisation; every sample needs a reference text")
    return gts, res


def java_available() -> bool:
    """Whether a ``java`` executable is on PATH (METEOR needs it)."""
    return shutil.which("java") is not None


def meteor_scorer():
    """The process-wide pycocoevalcap METEOR scorer (started once), or None with the reason logged."""
    global _METEOR, _METEOR_ERROR
    with _METEOR_LOCK:
        if _METEOR is not None or _METEOR_ERROR is not None:
            return _METEOR
        if not java_available():
            _METEOR_ERROR = "METEOR skipped: no `java` on PATH (install a JRE, e.g. openjdk-17-jre, to get it)"
            log.warning(_METEOR_ERROR)
            return None
        try:
            from pycocoevalcap.meteor.meteor import Meteor

            _METEOR = Meteor()
            atexit.register(_close_meteor)
        except Exception as exc:  # a broken JVM must not take the other metrics down
            _METEOR_ERROR = f"METEOR skipped: the METEOR JVM did not start ({exc})"
            log.warning(_METEOR_ERROR)
        return _METEOR


def _close_meteor() -> None:
    global _METEOR
    if _METEOR is not None:
        with contextlib.suppress(Exception):
            _METEOR.meteor_p.stdin.close()
            _METEOR.meteor_p.kill()
            _METEOR.meteor_p.wait(timeout=5)
        _METEOR = None


def _quiet(fn, *args):
    """pycocoevalcap's BLEU prints its statistics; library code must not print."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _rouge_l(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[float, list[float]]:
    """pycocoevalcap's ROUGE-L (mean of per-sample scores); an empty hypothesis scores 0 instead of
    dividing by zero inside pycocoevalcap."""
    from pycocoevalcap.rouge.rouge import Rouge

    rouge = Rouge()
    per = [float(rouge.calc_score(res[i], gts[i])) if res[i][0].strip() else 0.0 for i in gts]
    return (sum(per) / len(per) if per else 0.0), per


def compute_nlg(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], meteor: bool = True) -> dict:
    """Corpus BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap) of hypotheses vs references.

    ``references[i]`` is one text or a list of texts for hypothesis ``i``. Returns the seven metric
    keys of :data:`NLG_KEYS` (METEOR None when it cannot run or ``meteor=False``), ``"notes"`` (list of
    strings) and ``"normalisation"``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts, res = prepare(hypotheses, references)
    out: dict = {}
    bleu, _ = _quiet(Bleu(4).compute_score, gts, res)
    out.update({k: float(v) for k, v in zip(BLEU_KEYS, bleu)})
    notes: list[str] = []
    out["METEOR"] = None
    if meteor:
        scorer = meteor_scorer()
        if scorer is None:
            notes.append(_METEOR_ERROR or "METEOR skipped")
        else:
            with _METEOR_LOCK:
                out["METEOR"] = float(scorer.compute_score(gts, res)[0])
    else:
        notes.append("METEOR not computed (meteor=False)")
    out["ROUGE-L"] = float(_rouge_l(gts, res)[0])
    out["CIDEr"] = float(_quiet(Cider().compute_score, gts, res)[0])
    out["notes"] = notes
    out["normalisation"] = NORMALISATION
    return out


def rouge_l_per_sample(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[float]:
    """Per-sample ROUGE-L F-measure (rouge-score), best over a sample's references.

    >>> rouge_l_per_sample(["no effusion"], ["No effusion."])
    [1.0]
    """
    from rouge_score import rouge_scorer

    gts, res = prepare(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [float(max(scorer.score(r, res[i][0])["rougeL"].fmeasure for r in gts[i])) for i in gts]


def sacrebleu_score(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus sacreBLEU (default 13a tokenisation, 0-100 scale) on normalised, lower-cased text.

    Single-reference lists only have one reference stream; multi-reference samples must all have the
    same number of references.

    >>> round(sacrebleu_score(["no pleural effusion ."], ["No pleural effusion."]), 6)
    100.0
    """
    import sacrebleu

    refs = _as_ref_lists(references)
    if len({len(r) for r in refs}) > 1:
        raise ValueError("sacreBLEU needs the same number of references for every sample")
    hyps = [normalize_report_text(h or "").lower() for h in hypotheses]
    streams = [[normalize_report_text(r[j]).lower() for r in refs] for j in range(len(refs[0]))]
    return float(sacrebleu.corpus_bleu(hyps, streams).score)


__all__ = [
    "compute_nlg",
    "prepare",
    "rouge_l_per_sample",
    "sacrebleu_score",
    "meteor_scorer",
    "java_available",
    "NLG_KEYS",
    "BLEU_KEYS",
    "NORMALISATION",
]
