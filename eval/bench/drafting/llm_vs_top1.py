"""Checked drafts on the default bundle's test split: defects left, the default's clinical F1 with and without
the draft checker, and the grounded LLM against top-1 on the same studies with bootstrap CIs.

    python -m eval.bench.drafting.llm_vs_top1 --llm-limit 200 --out docs/results/llm_paired.md
    python -m eval.bench.drafting.llm_vs_top1 --llm-limit 0 --choose-thresholds --cache /tmp/emb   # thresholds on val

Every test study with report text (sorted by study id) is drafted with the pipeline's own stages
(embed, predict_labels, retrieve, draft: what ``generate_report`` returns) in top-1 (the default) and
consensus, the first ``--llm-limit`` of them also in grounded mode with the default LLM. Each draft is
audited for the defects the checker removes (:mod:`eval.report_gen.draft_audit`, its own detectors). The
LLM row is paired with top-1 on its studies (:func:`eval.report_gen.paired_ci.paired_bootstrap`) and the
rule for ``mode="auto"`` applied (:func:`eval.report_gen.paired_ci.llm_wins`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from eclip_core.runtime import setup_offline

setup_offline()  # before any Hugging Face library is imported


def _draft_all(pipe, studies, embedded, mode, *, llm=None, check=True, progress=True):
    """Per study: (findings, impression, predicted present, ms of retrieve + draft)."""
    from tqdm.auto import tqdm

    out = []
    for i, _study in enumerate(tqdm(studies, desc=f"{mode}{'' if check else ' unchecked'}", disable=not progress)):
        t0 = time.perf_counter()
        probs = embedded.probabilities[i]
        reports = pipe.retrieve(embedded.vectors[i], mode=mode, probabilities=probs)
        drafted = pipe.draft(reports, mode, probabilities=probs, llm=llm, check=check)
        ms = (time.perf_counter() - t0) * 1000.0
        out.append((drafted.findings, drafted.impression, pipe.predicted(probs), ms))
    return out


def _embedded(pipe, studies, cache, name, progress):
    """:func:`eval.report_gen.systems.embed_studies`, kept in ``cache``/``name``.npz when a cache is given."""
    import numpy as np

    from eval.report_gen.systems import Embedded, embed_studies

    path = Path(cache) / f"{name}.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path)
        if list(z["ids"]) == [s.study_id for s in studies]:
            return Embedded(list(z["vectors"]), list(z["probabilities"]), list(z["ms"]))
    out = embed_studies(pipe, studies, progress=progress, desc=f"embed {name} X-rays")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            ids=[s.study_id for s in studies],
            vectors=np.stack(out.vectors),
            probabilities=np.stack(out.probabilities),
            ms=np.asarray(out.embed_ms),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llm-limit", type=int, default=200, help="test studies drafted by the LLM (0: none)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", default="docs/results/llm_paired.md")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument(
        "--choose-thresholds",
        action="store_true",
        help="choose the checker's image thresholds on the val split first (else the index's)",
    )
    p.add_argument("--cache", default=None, help="folder keeping the X-ray embeddings between runs")
    p.add_argument("--model", default=None, help="eCLIP checkpoint folder (default: the bundle's)")
    p.add_argument("--index", default=None, help="report index folder (default: the bundle's)")
    p.add_argument("--manifest", default=None, help="study manifest (default: the bundle's)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import numpy as np

    from eclip_core.data.manifest import read_manifest
    from eclip_core.text import join_report
    from eval.bench.page import write_page
    from eval.report_gen.draft_audit import KINDS, audit_drafts
    from eval.report_gen.paired_ci import METRICS, llm_wins, paired_bootstrap
    from eval.report_gen.scoring import clinical_scores
    from rag_report.bundle import default_bundle
    from rag_report.pipeline import PipelineConfig, ReportPipeline

    progress = not args.no_progress
    t_start = time.perf_counter()
    manifest = args.manifest or default_bundle(build=True, progress=progress).manifest_path
    pipe = ReportPipeline(PipelineConfig(model_dir=args.model, index_dir=args.index), progress=False)
    test = sorted(
        (s for s in read_manifest(manifest, split="test") if s.report_text.strip()),
        key=lambda s: s.study_id,
    )
    refs = [s.report_text for s in test]
    result: dict = {
        "command": "python -m eval.bench.drafting.llm_vs_top1 " + " ".join(argv or sys.argv[1:]),
        "rows": {},
    }
    if args.choose_thresholds:
        from eval.bench.drafting.checker_thresholds import val_thresholds

        val = [s for s in read_manifest(manifest, split="val") if s.report_text.strip() and s.image_paths]
        emb = _embedded(pipe, val, args.cache, "val", progress)
        pipe.checker.thresholds = val_thresholds(pipe, val, probs=np.stack(emb.probabilities))
    t = pipe.checker.thresholds
    result["thresholds"] = {"assert_floor": t.assert_floor, "deny_ceiling": t.deny_ceiling, "how": t.how}
    print(json.dumps(result["thresholds"], indent=1), flush=True)
    embedded = _embedded(pipe, test, args.cache, "test", progress)
    rows = {
        "top-1 (default)": _draft_all(pipe, test, embedded, "top1", progress=progress),
        "top-1, checker off": _draft_all(pipe, test, embedded, "top1", check=False, progress=progress),
        "consensus": _draft_all(pipe, test, embedded, "consensus", progress=progress),
    }

    def publish(rows: dict, n_llm: int) -> None:
        """Score, audit and write what is drafted so far (the page and the JSON)."""

        def text(d):
            return join_report(d[0], d[1])

        for name, drafts in rows.items():
            f1 = clinical_scores(refs[: len(drafts)], [text(d) for d in drafts])["uncertain_as_negative"]
            ms = [d[3] for d in drafts]
            result["rows"][name] = {
                "n": len(drafts),
                "defects": audit_drafts((d[0], d[1], d[2]) for d in drafts),
                "micro_f1_5": f1["micro_f1_5"],
                "macro_f1_14": f1["macro_f1_14"],
                "retrieve_draft_ms_p50": float(np.median(ms)),
            }
        if n_llm:
            ci = paired_bootstrap(
                refs[:n_llm],
                [text(d) for d in rows["grounded LLM"]],
                [text(d) for d in rows["top-1 (default)"][:n_llm]],
                n_boot=args.n_boot,
            )
            result["paired"] = {"n": n_llm, "n_boot": args.n_boot, "metrics": ci, "llm_default": llm_wins(ci)}
        result["wall_seconds"] = round(time.perf_counter() - t_start, 1)

        lines = [
            "# Checked drafts and the LLM against top-1 (default bundle, test split)",
            "",
            "> Default bundle: real Open-I report text with SIMULATED (phantom) radiographs; numbers do not "
            "transfer to real images.",
            "",
            f"Command: `{result['command']}` ({result['wall_seconds'] / 60:.0f} min on a 2-core CPU).",
            "",
            "## Defects left in the drafts (drafts with at least one)",
            "",
            "| row | n | " + " | ".join(KINDS) + " | micro-F1(5) | macro-F1(14) | retrieve + draft ms (p50) |",
            "|---|---|" + "---|" * len(KINDS) + "---|---|---|",
        ]
        for name, r in result["rows"].items():
            lines.append(
                f"| {name} | {r['n']} | "
                + " | ".join(str(r["defects"][k]) for k in KINDS)
                + f" | {r['micro_f1_5']:.3f} | {r['macro_f1_14']:.3f} | {r['retrieve_draft_ms_p50']:.0f} |"
            )
        lines += [
            "",
            "Defect kinds (eval.report_gen.draft_audit, detectors of its own): a comparison word, list numbering, a "
            "cut sentence, a view not given, another body region, an impression observation that the findings and "
            "the image's prediction both lack. Clinical F1: uncertain counts as negative.",
        ]
        if n_llm:
            pr = result["paired"]
            lines += [
                "",
                f"## Grounded LLM (checked) vs top-1 on the same {pr['n']} studies",
                "",
                f"Paired bootstrap over studies ({pr['n_boot']} resamples), 95 % percentile interval of LLM - top-1.",
                "",
                "| metric | LLM | top-1 | LLM - top-1 | 95 % CI |",
                "|---|---|---|---|---|",
            ]
            for m in METRICS:
                c = pr["metrics"][m]
                lines.append(
                    f"| {m} | {c['a']:.3f} | {c['b']:.3f} | {c['diff']:+.3f} | [{c['low']:+.3f}, {c['high']:+.3f}] |"
                )
            c5, cr, cc = (pr["metrics"][m] for m in ("micro_f1_5", "ROUGE-L", "CIDEr"))
            verdict = "the checked LLM drafts by default" if pr["llm_default"] else "top-1 stays the default"
            lines += [
                "",
                'Rule for `mode="auto"`: the LLM drafts by default when it is not worse than top-1 on micro-F1(5) '
                "(lower bound of the difference >= -0.02) and better on ROUGE-L or CIDEr (lower bound > 0). Here the "
                f"micro-F1(5) lower bound is {c5['low']:+.3f}, ROUGE-L's {cr['low']:+.3f}, CIDEr's {cc['low']:+.3f}: "
                f"{verdict}.",
            ]
        write_page(args.out, lines)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=1, default=float))

    publish(rows, 0)  # the extractive rows first: a long LLM run may be stopped
    n_llm = min(args.llm_limit, len(test))
    if n_llm:
        llm = pipe.llm()
        llm_studies = test[:n_llm]
        rows["grounded LLM"] = _draft_all(pipe, llm_studies, embedded, "grounded", llm=llm, progress=progress)
        publish(rows, n_llm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
