"""Validate the CheXpert-style labeler on real text: Open-I reports vs NegBio's expert labels.

The gold standard (NegBio's expert labels, ``openi_gold_labels_negbio.csv``: 3,851 reports, ChestX-ray14
names; public domain, shipped with this package in ``eval/data`` next to its NOTICE) overlaps the CheXpert
observations on Atelectasis, Cardiomegaly, Effusion -> Pleural Effusion, Pneumonia, Pneumothorax,
Consolidation, Edema and Mass/Nodule -> Lung Lesion. The labeler reads the findings + impression of each
report (the same text the project embeds and scores; read from the installed torchxrayvision package).
Gold labels are binary; the headline counts the labeler's uncertain mentions as negative (the IU
annotators code what the radiologist asserts), and the uncertain-as-positive numbers are given too.

    python -m eval.labeler_validation                      # writes docs/results/labeler.md
    python -m eval.labeler_validation --data-dir DIR       # gold labels from another folder

>>> CATEGORY_MAP["Effusion"]
'Pleural Effusion'
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eclip_core.labeler import label_report, sentence_observations
from eclip_core.text import join_report, split_sentences
from eval.bench.page import write_page

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
#: The NegBio gold labels and test-set uids, shipped as package data (public domain; see its NOTICE).
DATA_DIR = Path(__file__).resolve().parent / "data"
GOLD_CSV = "openi_gold_labels_negbio.csv"
TESTSET_TXT = "openi_testset_negbio.txt"

#: NegBio (ChestX-ray14) column(s) -> CheXpert observation; gold is positive if any column is.
CATEGORY_MAP: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Pleural Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Mass|Nodule": "Lung Lesion",
}
POLICIES = {"uncertain_as_negative": (1.0,), "uncertain_as_positive": (1.0, -1.0)}
HEADLINE = "uncertain_as_negative"


@dataclass
class CategoryScore:
    observation: str
    gold_columns: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn


@dataclass
class ValidationResult:
    """Per-category scores and micro/macro F1 under one uncertain policy, over ``n_reports`` reports."""

    policy: str
    n_reports: int
    categories: list[CategoryScore]
    errors: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # obs -> (kind, uid, text)

    @property
    def micro_f1(self) -> float:
        tp = sum(c.tp for c in self.categories)
        fp = sum(c.fp for c in self.categories)
        fn = sum(c.fn for c in self.categories)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    @property
    def macro_f1(self) -> float:
        return float(np.mean([c.f1 for c in self.categories]))


def _load_reports() -> dict[str, str]:
    """uid -> findings + impression, from eclip_core.data.openi (or the torchxrayvision tgz directly)."""
    try:
        from eclip_core.data.openi import load_openi_reports
    except ImportError:  # the loader module is someone else's; read the tgz minimally without it
        return _load_reports_from_tgz()
    return {r.uid: r.report_text for r in load_openi_reports()}


def _load_reports_from_tgz() -> dict[str, str]:
    import importlib.util
    import tarfile
    import xml.etree.ElementTree as ET

    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("torchxrayvision is not installed; it ships the Open-I reports (NLMCXR_reports.tgz)")
    tgz = Path(list(spec.submodule_search_locations)[0]) / "data" / "NLMCXR_reports.tgz"
    out = {}
    with tarfile.open(tgz) as tar:
        for member in tar:
            if not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(tar.extractfile(member).read())
            uid = root.find("uId").get("id")
            sec = {a.get("Label"): (a.text or "") for a in root.iter("AbstractText")}
            out[uid] = join_report(sec.get("FINDINGS"), sec.get("IMPRESSION"))
    return out


def _gold(frame: pd.DataFrame, columns: str) -> np.ndarray:
    return frame[columns.split("|")].to_numpy().max(axis=1) > 0


def validate(
    data_dir: Path = DATA_DIR, uids: list[str] | None = None, n_errors: int = 6, reports: dict[str, str] | None = None
) -> dict[str, ValidationResult]:
    """Score the labeler against the NegBio gold labels under both uncertain policies.

    ``uids`` restricts the set (e.g. NegBio's test split); reports without findings or impression text
    are skipped (there is nothing to label).
    """
    gold = pd.read_csv(Path(data_dir) / GOLD_CSV)
    reports = reports if reports is not None else _load_reports()
    gold = gold[gold["filename"].map(lambda u: bool(reports.get(u, "").strip()))]
    if uids is not None:
        gold = gold[gold["filename"].isin(set(uids))]
    texts = [reports[u] for u in gold["filename"]]
    labels = [label_report(t) for t in texts]
    out = {}
    for policy, positive in POLICIES.items():
        cats, errors = [], {}
        for cols, obs in CATEGORY_MAP.items():
            g = _gold(gold, cols)
            p = np.array([lab[obs] in positive for lab in labels])
            cats.append(
                CategoryScore(
                    obs, cols.replace("|", " or "), int((g & p).sum()), int((~g & p).sum()), int((g & ~p).sum())
                )
            )
            errs = []
            for kind, mask in (("FP", ~g & p), ("FN", g & ~p)):
                for i in np.flatnonzero(mask)[:n_errors]:
                    errs.append((kind, gold["filename"].iloc[i], _evidence(texts[i], obs, kind)))
            errors[obs] = errs
        out[policy] = ValidationResult(policy, len(texts), cats, errors)
    return out


def _evidence(text: str, obs: str, kind: str, max_chars: int = 160) -> str:
    """The sentences behind an error, short: those labelling ``obs`` positive (FP), or negative /
    uncertain (FN); an FN where the labeler is silent says so instead of quoting the report."""
    wanted = (1.0,) if kind == "FP" else (0.0, -1.0)
    sents = [s for s in split_sentences(text) if sentence_observations(s).get(obs) in wanted]
    if not sents:
        return "(the labeler does not mention it)"
    quoted = " ".join(dict.fromkeys(sents))  # a report often repeats its finding in the impression
    return quoted if len(quoted) <= max_chars else quoted[:max_chars].rsplit(" ", 1)[0] + " ..."


def _speed(texts: list[str]) -> tuple[float, float]:
    """Reports per second with a cold sentence cache and with a warm one."""
    from eclip_core.labeler import core

    core.clear_caches()
    t0 = time.perf_counter()
    for t in texts:
        label_report(t)
    cold = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for t in texts:
        label_report(t)
    warm = len(texts) / (time.perf_counter() - t0)
    return cold, warm


def _table(res: ValidationResult) -> list[str]:
    lines = ["| observation (gold column) | support | precision | recall | F1 |", "|---|---|---|---|---|"]
    for c in res.categories:
        lines.append(
            f"| {c.observation} ({c.gold_columns}) | {c.support} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} |"
        )
    lines.append(f"| **micro** | {sum(c.support for c in res.categories)} | | | **{res.micro_f1:.3f}** |")
    lines.append(f"| macro | | | | {res.macro_f1:.3f} |")
    return lines


def render_markdown(
    full: dict[str, ValidationResult], test: dict[str, ValidationResult], speed: tuple[float, float], command: str
) -> str:
    """The page: what is compared and how this labeler departs from CheXpert's, the score tables, the speed,
    what remains wrong and the first errors per observation."""
    lines = _intro(command) + _score_tables(full, test)
    lines += _speed_and_caveat(speed) + REMAINING_ERRORS + _error_table(full[HEADLINE])
    return "\n".join(lines)


def _intro(command: str) -> list[str]:
    return [
        "# Labeler validation: Open-I reports vs NegBio expert labels",
        "",
        f"Command: `{command}` (reads NegBio's gold labels, `eval/data/{GOLD_CSV}`, shipped with the package",
        "with their public-domain notice, and the Open-I reports shipped in the torchxrayvision package).",
        "",
        "Labeler: `eclip_core.labeler.label_report` on findings + impression. Gold: NegBio's expert labels",
        "(ChestX-ray14 names) on the overlapping categories: Effusion -> Pleural Effusion, Mass or Nodule ->",
        "Lung Lesion, the others by name. Not mentioned counts as negative.",
        "",
        "Uncertain policy of the headline: uncertain counted as negative. The Open-I gold labels follow the",
        "IU annotators' MeSH coding, which codes what the radiologist asserts and leaves hedged findings",
        '("may represent pneumonia", "differential includes edema") uncoded; counting uncertain as',
        "positive turns those hedges into false positives (second table).",
        "",
        "Where this labeler departs from the CheXpert labeler (each checked against these gold labels):",
        "",
        '- Anatomical words ("heart size", "cardiac silhouette", "mediastinum") count only with a size',
        '  descriptor in their clause (enlarged / normal / borderline); CheXpert counts any unnegated "the heart".',
        '- "Borderline" heart size is Cardiomegaly (a grade of size; IU codes "Cardiomegaly/borderline"),',
        '  not uncertain. "Upper limits of normal" / "top normal" is negative.',
        '- "Nodular opacity / density" is Lung Opacity, not Lung Lesion; "calcified nodule" is a Lung Lesion',
        '  (IU codes "Nodule/calcified"); "calcified granuloma" is no observation (as in CheXpert).',
        '- "Pulmonary vascular congestion", "vascular prominence", "indistinctness" are not Edema',
        '  (IU codes them "Pulmonary Congestion"); "soft tissue edema" is not Edema.',
        '- "Infection" after "prior / old / granulomatous" is not Pneumonia; "pneumonitis" is.',
        '- "represents" is not a hedge (Open-I\'s de-identification often hides the "likely" before it);',
        '  "correlate clinically for", "question", "in the differential" are.',
        "- Findings outside the 14 (emphysema, granuloma, degenerative change, hyperinflation, tortuous aorta)",
        '  are recognised as no observation and do not block "No Finding" (the CheXpert rule as specified).',
        "",
    ]


def _score_tables(full: dict[str, ValidationResult], test: dict[str, ValidationResult]) -> list[str]:
    """Headline policy on all gold reports, the other policy, and the headline on NegBio's test split."""
    main = full[HEADLINE]
    other = next(p for p in full if p != HEADLINE)
    return [
        f"## All {main.n_reports} gold reports with text, {HEADLINE.replace('_', ' ')} (headline)",
        "",
        *_table(main),
        "",
        f"## {other.replace('_', ' ').capitalize()} ({full[other].n_reports} reports)",
        "",
        *_table(full[other]),
        "",
        f"## NegBio's test split ({test[HEADLINE].n_reports} reports), {HEADLINE.replace('_', ' ')}",
        "",
        *_table(test[HEADLINE]),
        "",
    ]


def _speed_and_caveat(speed: tuple[float, float]) -> list[str]:
    return [
        f"Speed (one process, the machine that wrote this page): {speed[0]:,.0f} reports/s with a cold sentence cache, "
        f"{speed[1]:,.0f} reports/s warm.",
        "",
        "Caveat: the rule edits above were made while reading errors on all gold reports, NegBio's test split",
        "included, so the split is not a held-out estimate; the hand-written sentence tests",
        "(tests/test_labeler.py) check the rules independently of this data.",
        "",
    ]


#: The kinds of error left, read from the error lists (a summary: report text is not copied here).
REMAINING_ERRORS = [
    "## What remains wrong, by kind",
    "",
    '- Hedged findings the annotators coded anyway ("atelectasis versus scarring", "probable effusion",',
    '  "most suggestive of edema"): false negatives under the headline policy, true positives under the other.',
    '- "Enlarged cardiac silhouette" that IU coded as "Cardiac Shadow/enlarged" rather than Cardiomegaly.',
    '- Nodule wording the coding treats inconsistently ("nodular opacity" sometimes coded Nodule, small',
    '  nodules near ribs / nipples not coded, "fibronodular" scarring coded Nodule).',
    '- Text garbled by de-identification ("Marrow pneumothorax, ..." for "No pneumothorax"; a lost "No").',
    "",
]


def _error_table(main: ValidationResult) -> list[str]:
    """The uids of the first false positives and negatives per observation (under the headline policy)."""
    lines = [
        f"## Kinds of sentences it gets wrong (first errors per category, {HEADLINE.replace('_', ' ')})",
        "",
        "FP = the labeler says positive, gold negative; FN = gold positive, the labeler says negative, uncertain",
        "or nothing. Report text is not copied into this repository (Open-I is CC BY-NC-ND 4.0): the study",
        "uids are listed so the sentences can be read from the torchxrayvision package",
        "(`eclip_core.data.openi.load_openi_reports()`); the kinds are summarised above.",
        "",
        "| observation | false positives (uids) | false negatives (uids) |",
        "|---|---|---|",
    ]
    for obs, errs in main.errors.items():
        if not errs:
            continue
        fps = ", ".join(uid for kind, uid, _ in errs if kind == "FP") or "-"
        fns = ", ".join(uid for kind, uid, _ in errs if kind == "FN") or "-"
        lines.append(f"| {obs} | {fps} | {fns} |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help=f"folder with {GOLD_CSV} and {TESTSET_TXT} (default: the copy shipped in eval/data)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "labeler.md")
    ap.add_argument("--errors", type=int, default=4, help="errors of each kind (FP, FN) listed per category")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reports = _load_reports()
    full = validate(args.data_dir, n_errors=args.errors, reports=reports)
    test_uids = (args.data_dir / TESTSET_TXT).read_text().split()
    test = validate(args.data_dir, uids=test_uids, n_errors=0, reports=reports)
    speed = _speed(list(reports.values()))
    command = "python -m eval.labeler_validation" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    md = render_markdown(full, test, speed, command.strip())
    write_page(args.out, md, echo=False)
    for policy, res in full.items():
        log.info("%s: micro-F1 %.3f macro-F1 %.3f over %d reports", policy, res.micro_f1, res.macro_f1, res.n_reports)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["validate", "ValidationResult", "CategoryScore", "CATEGORY_MAP", "render_markdown", "main"]
