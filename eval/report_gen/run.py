"""Run the report-generation benchmark: every system on the same test studies, one table.

>>> from eval.report_gen import ReportGenConfig, run_report_gen
>>> result = run_report_gen(ReportGenConfig(quick=True))          # doctest: +SKIP
>>> [row["name"] for row in result["rows"]]                       # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
import logging
import platform
import time
from pathlib import Path
from typing import Any

from eclip_core.data.manifest import Study, read_manifest
from eclip_core.errors import ConfigError
from eclip_core.paths import rag_report_home
from eval.report_gen import systems as S
from eval.report_gen.config import LLM_SYSTEMS, SYSTEMS, ReportGenConfig
from eval.report_gen.scoring import score_system

log = logging.getLogger(__name__)

CHOICES = [
    "Text: references and drafts are FINDINGS + IMPRESSION joined by eclip_core.text.join_report "
    "(de-id runs XXXX/___ -> one XXXX token, whitespace collapsed, final period); metrics lower-case and "
    "split punctuation with eclip_core.text.tokenize_for_metrics, identically for both.",
    "NLG metrics: pycocoevalcap engine (BLEU-1..4 corpus-level, METEOR 1.5, ROUGE-L, CIDEr-D) via eval.metrics.",
    "Clinical F1: eclip_core.labeler (CheXpert-style rules) on reference and draft; not mentioned = negative; "
    "micro/macro over the 14 CheXpert observations and over the 5 common ones (Atelectasis, Cardiomegaly, "
    "Consolidation, Edema, Pleural Effusion); both uncertain policies reported.",
    "label-P@k: share of the k retrieved reports whose set of positive observations equals the study's "
    "(labels of the study's own report by the same labeler); oracle has no retrieval (n/a).",
    "Latency: mean per study of (batched image embedding time / n) + retrieval + drafting, in this process; "
    "model and LLM loading excluded.",
    "Studies: the split's studies that have report text, sorted by study id, the first `limit` of them; the "
    "grounded LLM row on the first `llm_limit` of those and the free LLM row on the first `free_limit` (same "
    "order; the n column says how many each row scored). Free mode decodes greedily unless --num-beams.",
    "Random retrieval: k reports drawn uniformly from the manifest's train split with numpy "
    "default_rng(seed); the draft is the first.",
    "Label-matched retrieval is a DIAGNOSTIC, not a method: it picks train reports whose positive "
    "observations best match the study's own reference labels (it reads the answer). It bounds what "
    "retrieval of whole reports can reach on clinical F1 when the image model is perfect at labels.",
]


class _Inputs:
    """Resolved paths and facts of the run (the default bundle when the user gives no paths)."""

    def __init__(self, cfg: ReportGenConfig) -> None:
        self.simulated = False
        self.manifest, self.model, self.index = cfg.manifest, cfg.model, cfg.index
        self.clip_model, self.clip_index = cfg.clip_model, cfg.clip_index
        self.notes: list[str] = []
        if cfg.manifest is None:
            from rag_report.bundle import DefaultBundleConfig, default_bundle, train_bundle_model

            bundle = default_bundle(build=True, progress=cfg.progress)
            self.simulated = bundle.info.get("simulated", True)
            self.manifest = str(bundle.manifest_path)
            if self.model is None:
                self.model, self.index = str(bundle.eclip_dir), self.index or str(bundle.index_dir)
            if self.clip_model is None and "clip_top1" in cfg.systems:
                clip_dir = bundle.model_dir("clip")
                if not (clip_dir / "config.json").is_file():
                    log.info("training the CLIP baseline with the same budget as eCLIP (once; cached)")
                    bundle_cfg = DefaultBundleConfig(**bundle.info["config"]) if bundle.info.get("config") else None
                    clip_dir = train_bundle_model(bundle_cfg or DefaultBundleConfig(), Path(self.manifest), "clip",
                                                  progress=cfg.progress)
                self.clip_model = str(clip_dir)
        elif self.model is None and any(s.startswith("eclip_") for s in cfg.systems):
            raise ConfigError(f"--manifest {cfg.manifest} given without --model: pass the eCLIP checkpoint folder "
                              "trained for this data (python -m eclip_core.train), or run only random/oracle")
        else:
            self.simulated = _is_simulated(cfg.manifest)
        if "clip_top1" in cfg.systems and self.clip_model is None:
            self.notes.append("CLIP top-1 skipped: no --clip-model given for this data")


def _is_simulated(manifest: str) -> bool:
    """True when the manifest's studies say they are phantom (simulated) images."""
    try:
        studies = read_manifest(manifest)
    except Exception:  # the run reads it again and reports a real problem clearly
        return False
    return bool(studies) and all(bool((s.meta or {}).get("simulated")) for s in studies[:50])


def _load_retriever(model_dir: str, index_dir: str | None, corpus: list[Study], progress: bool):
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex, is_current_index
    from rag_report.retriever import EClipRetriever

    model = EClip.from_pretrained(model_dir).eval()
    if index_dir is None:
        # A baseline without an index of its own: index the same corpus with it (cached by checkpoint).
        index_dir = str(rag_report_home() / "eval" / "indexes" / f"{model.checkpoint_hash}-{len(corpus)}")
        if not is_current_index(index_dir):
            ReportIndex.build(model, corpus, index_dir, progress=progress, corpus_name="report_gen baseline corpus")
    index = ReportIndex.load(index_dir, model=model)
    return model, index, EClipRetriever(index, model), index_dir


def select_studies(studies: list[Study], split: str, limit: int | None) -> tuple[list[Study], int]:
    """The split's studies with report text, sorted by id, first ``limit``; and how many had no text."""
    in_split = sorted((s for s in studies if s.split == split), key=lambda s: s.study_id)
    with_text = [s for s in in_split if s.report_text.strip()]
    skipped = len(in_split) - len(with_text)
    return (with_text[:limit] if limit else with_text), skipped


def run_report_gen(cfg: ReportGenConfig) -> dict[str, Any]:
    """Run the configured systems, score them, write JSON / Markdown / PNG; return the result dict."""
    from eclip_core.labeler import label_report
    from eval.report_gen.plots import bar_chart
    from eval.report_gen.tables import write_outputs

    cfg.validate()
    t_start = time.perf_counter()
    inputs = _Inputs(cfg)
    studies = read_manifest(inputs.manifest)
    test, skipped = select_studies(studies, cfg.split, cfg.limit)
    if not test:
        raise ConfigError(f"manifest {inputs.manifest}: no {cfg.split!r} studies with report text")
    corpus = [s for s in studies if s.split == "train" and s.report_text.strip()]
    llm_test = test[: cfg.llm_limit] if cfg.llm_limit else test
    free_test = llm_test[: cfg.free_limit] if cfg.free_limit else llm_test
    log.info("%d %s studies (%d without text skipped), corpus %d, LLM rows on %d",
             len(test), cfg.split, skipped, len(corpus), len(llm_test))

    references = {s.study_id: s.report_text for s in test}
    ref_labels = {s.study_id: label_report(s.report_text) for s in test}
    outputs: list[S.SystemOutput] = []
    models: dict[str, str] = {"manifest": str(inputs.manifest)}
    notes = list(inputs.notes)
    eclip_systems = [s for s in cfg.systems if s.startswith("eclip_")]

    if "random" in cfg.systems:
        outputs.append(S.random_system(test, corpus, k=cfg.k, seed=cfg.seed, name=SYSTEMS["random"]))

    if "label_oracle" in cfg.systems:
        outputs.append(S.label_matched_system(test, corpus, ref_labels, k=cfg.k, seed=cfg.seed,
                                              name=SYSTEMS["label_oracle"]))

    if "clip_top1" in cfg.systems and inputs.clip_model:
        clip, _, clip_ret, _ = _load_retriever(inputs.clip_model, inputs.clip_index, corpus, cfg.progress)
        models["clip_checkpoint"] = f"{clip.checkpoint_hash} ({inputs.clip_model})"
        vecs, embed_ms = S.embed_queries(clip, test, batch_size=cfg.batch_size, progress=cfg.progress)
        plain = S.retrieve_all(clip_ret, vecs, k=cfg.k, candidates=cfg.candidates, diversify=None,
                               progress=cfg.progress, desc="CLIP retrieve")
        outputs.append(S.run_drafter("clip_top1", SYSTEMS["clip_top1"], test, embed_ms, plain, S.top1_text,
                                     progress=cfg.progress, meta={"checkpoint": clip.checkpoint_hash}))
        del clip, clip_ret

    if eclip_systems:
        model, index, retriever, index_dir = _load_retriever(inputs.model, inputs.index, corpus, cfg.progress)
        models["eclip_checkpoint"] = f"{model.checkpoint_hash} ({inputs.model})"
        models["index"] = f"{index.manifest.get('index_id', '')} ({index_dir})"
        vecs, embed_ms = S.embed_queries(model, test, batch_size=cfg.batch_size, progress=cfg.progress)
        plain = S.retrieve_all(retriever, vecs, k=cfg.k, candidates=cfg.candidates, diversify=None,
                               progress=cfg.progress, desc="eCLIP retrieve")
        div = (S.retrieve_all(retriever, vecs, k=cfg.k, candidates=cfg.candidates, diversify=cfg.diversify,
                              progress=cfg.progress, desc="eCLIP retrieve (diversified)")
               if cfg.diversify else plain)
        meta = {"checkpoint": model.checkpoint_hash}
        if "eclip_top1" in cfg.systems:
            outputs.append(S.run_drafter("eclip_top1", SYSTEMS["eclip_top1"], test, embed_ms, plain, S.top1_text,
                                         progress=cfg.progress, meta=meta))
        if "eclip_consensus" in cfg.systems:
            outputs.append(S.run_drafter("eclip_consensus", SYSTEMS["eclip_consensus"], test, embed_ms, div,
                                         S.consensus_text, label_retrieval=plain, progress=cfg.progress, meta=meta))
        llm_keys = [s for s in cfg.systems if s in LLM_SYSTEMS]
        if llm_keys:
            from rag_report.llm import LLMSpec, load_llm

            t0 = time.perf_counter()
            llm = load_llm(LLMSpec(path=cfg.llm, quantization=cfg.quantization))
            models["llm"] = f"{getattr(llm, 'id', '')} ({llm.spec.quantization}; asked {cfg.quantization})"
            log.info("LLM loaded in %.1f s", time.perf_counter() - t0)
            drafters = {"eclip_grounded": S.grounded_drafter(llm, cfg.max_sentences),
                        "eclip_free": S.free_drafter(llm, cfg.max_new_tokens, cfg.num_beams)}
            for key in llm_keys:
                subset = free_test if key == "eclip_free" else llm_test
                n = len(subset)
                sub_div = S.Retrieval(div.reports[:n], div.retrieve_ms[:n])
                sub_plain = S.Retrieval(plain.reports[:n], plain.retrieve_ms[:n])
                outputs.append(S.run_drafter(key, SYSTEMS[key], subset, embed_ms, sub_div, drafters[key],
                                             label_retrieval=sub_plain, progress=cfg.progress,
                                             meta={**meta, "llm": models["llm"]}))

    if "oracle" in cfg.systems:
        outputs.append(S.oracle_system(test, SYSTEMS["oracle"]))

    rows = []
    for out in outputs:
        metrics = score_system(out, references, ref_labels, k=cfg.k, meteor=cfg.meteor)
        notes += [n for n in metrics.pop("notes") if n not in notes]
        rows.append(_row(out, metrics, cfg, len(test), len(corpus)))
    targets = _targets(outputs, rows, references, ref_labels, cfg)

    from rag_report.report import SIMULATED_NOTICE

    result = {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "simulated": inputs.simulated,
        "simulated_notice": SIMULATED_NOTICE if inputs.simulated else "",
        "sizes": {"test_studies": len(test), "skipped_no_report": skipped, "corpus_reports": len(corpus),
                  "llm_studies": len(llm_test) if "eclip_grounded" in cfg.systems else 0,
                  "free_studies": len(free_test) if "eclip_free" in cfg.systems else 0},
        "choices": CHOICES,
        "notes": notes,
        "models": models,
        "rows": rows,
        "targets": targets,
        "machine": f"{platform.machine()} {platform.system()} python {platform.python_version()}",
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    paths = write_outputs(result, cfg.out_dir, cfg.name)
    title = f"{cfg.split} split, n={len(test)}" + (" (simulated images)" if inputs.simulated else "")
    paths["png"] = bar_chart(rows, Path(cfg.out_dir) / f"{cfg.name}.png", title=title)
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    log.info("wrote %s in %.0f s", ", ".join(str(p) for p in paths.values()), result["wall_seconds"])
    return result


def _row(out: S.SystemOutput, metrics: dict, cfg: ReportGenConfig, n_test: int, n_corpus: int) -> dict:
    return {
        "system": out.key, "name": out.name, "seed": cfg.seed, "split": cfg.split,
        "sizes": {"scored_studies": len(out.drafts), "test_studies": n_test, "corpus_reports": n_corpus,
                  "k": cfg.k},
        "command": cfg.command, "meta": out.meta, "metrics": metrics,
    }


def _micro14(row_or_metrics: dict, policy: str = "uncertain_as_negative") -> float | None:
    m = row_or_metrics.get("metrics", row_or_metrics)
    return ((m.get("clinical") or {}).get(policy) or {}).get("micro_f1_14")


def _targets(outputs, rows, references, ref_labels, cfg) -> list[dict]:
    """The issue's two targets, checked on the same studies (paired) and under both policies."""
    by_key = {r["system"]: r for r in rows}
    out_by_key = {o.key: o for o in outputs}
    targets = []
    if "eclip_top1" in by_key and "random" in by_key:
        diffs = {p: (_micro14(by_key["eclip_top1"], p) or 0.0) - (_micro14(by_key["random"], p) or 0.0)
                 for p in ("uncertain_as_negative", "uncertain_as_positive")}
        targets.append({
            "target": "eCLIP top-1 beats random retrieval on clinical micro-F1(14) by >= 0.15",
            "met": diffs["uncertain_as_negative"] >= 0.15,
            "detail": "difference {:.3f} (uncertain->negative), {:.3f} (uncertain->positive)".format(
                diffs["uncertain_as_negative"], diffs["uncertain_as_positive"]),
        })
    if "eclip_grounded" in by_key and "eclip_top1" in out_by_key:
        ids = set(out_by_key["eclip_grounded"].study_ids)
        top1 = out_by_key["eclip_top1"]
        paired = S.SystemOutput(top1.key, top1.name, [d for d in top1.drafts if d.study_id in ids], top1.meta)
        paired_m = score_system(paired, references, ref_labels, k=cfg.k, meteor=False)
        g, t = _micro14(by_key["eclip_grounded"]), _micro14(paired_m)
        targets.append({
            "target": "eCLIP + LLM grounded >= eCLIP top-1 on clinical micro-F1(14)",
            "met": g is not None and t is not None and g >= t,
            "detail": f"grounded {g:.3f} vs top-1 {t:.3f} on the same {len(ids)} studies (uncertain->negative)",
        })
    return targets
