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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from eclip_core.data.manifest import Study, read_manifest
from eclip_core.errors import ConfigError
from eval.report_gen import systems as S
from eval.report_gen.config import LLM_SYSTEMS, PIPELINE_SYSTEMS, SYSTEMS, ReportGenConfig
from eval.report_gen.scoring import score_system
from rag_report.paths import rag_report_home, text_feature_dir
from rag_report.pipeline import PipelineConfig

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
    "Latency: mean per study of image loading + embedding + label prediction + retrieval + drafting, in this "
    "process, one study at a time as ReportPipeline.generate does; model and LLM loading excluded.",
    "Model rows run ReportPipeline's own stages (embed, predict_labels, retrieve, draft): a row's drafts are "
    "what generate_report returns for the same image and config. top-1 drafts from the nearest report (the "
    "best label-boosted one with label boost); the other modes from the k retrieved reports (diversified). "
    "Every mode drafts only sentences that pass draft hygiene (no de-identification tokens, dates, ages or "
    "names, comparison-free, complete).",
    "eCLIP rows: eCLIP trained with the paper's objective, retrieval without label boost. Label boost rows: the "
    "default model (the paper's objective plus the label-aware terms of its config) with its label classifiers.",
    "Studies: the split's studies that have report text, sorted by study id, the first `limit` of them; the "
    "grounded LLM row on the first `llm_limit` of those and the free LLM row on the first `free_limit` (same "
    "order; the n column says how many each row scored). Free mode decodes greedily unless --num-beams.",
    "Random retrieval: k reports drawn uniformly from the manifest's train split with numpy "
    "default_rng(seed); the draft is the first.",
    "Label-matched retrieval is a DIAGNOSTIC, not a method: it picks train reports whose positive "
    "observations best match the study's own reference labels (it reads the answer). It bounds what "
    "retrieval of whole reports can reach on clinical F1 when the image model is perfect at labels.",
]


#: How the paper's protocol retrieves for drafting (the eCLIP and CLIP rows): k-means over the top 100.
PAPER_DIVERSIFY = "kmeans"


@dataclass
class _Model:
    """One model's pipeline inputs: checkpoint, index (None: build one from the corpus), label boost and
    diversification (the paper rows keep the paper's k-means; the default rows use the pipeline's)."""

    model_dir: str
    index_dir: str | None
    label_boost: str = "off"
    diversify: str | None = PAPER_DIVERSIFY
    #: top-1 completion with normal statements and predicted findings (the paper's top-1 is the first
    #: report alone).
    normal_statements: int = 0
    finding_statements: int = 0


class _Inputs:
    """Resolved paths and facts of the run (the default bundle when the user gives no paths)."""

    def __init__(self, cfg: ReportGenConfig) -> None:
        self.simulated = False
        self.manifest = cfg.manifest
        pipe = cfg.pipeline
        self.models: dict[str, _Model] = {}
        self.notes: list[str] = []
        roles = {PIPELINE_SYSTEMS[s][0] for s in cfg.systems if s in PIPELINE_SYSTEMS}
        if cfg.manifest is None:
            from rag_report.bundle import default_bundle, train_bundle_model

            bundle = default_bundle(build=True, progress=cfg.progress)
            self.simulated = bundle.info.get("simulated", True)
            self.manifest = str(bundle.manifest_path)
            self.models["default"] = _Model(
                pipe.model_dir or str(bundle.eclip_dir),
                pipe.index_dir or str(bundle.index_dir),
                pipe.label_boost,
                pipe.diversify,
                pipe.normal_statements,
                pipe.finding_statements,
            )
            for role, method in (("paper", "eclip-paper"), ("clip", "clip")):
                given = cfg.paper_model if role == "paper" else cfg.clip_model
                index = cfg.paper_index if role == "paper" else cfg.clip_index
                if role in roles and given is None:
                    log.info("training the %s model with the default model's budget (once; cached)", method)
                    given = str(train_bundle_model(bundle.config, bundle.manifest_path, method, progress=cfg.progress))
                if given is not None:
                    self.models[role] = _Model(given, index)
        else:
            self.simulated = _is_simulated(cfg.manifest)
            if pipe.model_dir is None and roles - {"clip"}:
                raise ConfigError(
                    f"--manifest {cfg.manifest} given without --model: pass the eCLIP checkpoint folder "
                    "trained for this data (python -m eclip_core.train), or run only random/oracle"
                )
            if pipe.model_dir is not None:
                self.models["default"] = _Model(
                    pipe.model_dir,
                    pipe.index_dir,
                    pipe.label_boost,
                    pipe.diversify,
                    pipe.normal_statements,
                    pipe.finding_statements,
                )
                self.models["paper"] = _Model(
                    cfg.paper_model or pipe.model_dir, cfg.paper_index if cfg.paper_model else pipe.index_dir
                )
            if cfg.clip_model is not None:
                self.models["clip"] = _Model(cfg.clip_model, cfg.clip_index)
        if "clip" in roles and "clip" not in self.models:
            self.notes.append("CLIP top-1 skipped: no --clip-model given for this data")


def _is_simulated(manifest: str) -> bool:
    """True when the manifest's studies say they are phantom (simulated) images."""
    try:
        studies = read_manifest(manifest)
    except Exception:  # the run reads it again and reports a real problem clearly
        return False
    return bool(studies) and all(bool((s.meta or {}).get("simulated")) for s in studies[:50])


def _pipeline(cfg: ReportGenConfig, model: _Model, corpus: list[Study]):
    """A ReportPipeline over ``model`` (indexing the corpus with it first when it has no index; cached)."""
    from eclip_core.model import EClip
    from rag_report.index import ReportIndex, is_current_index
    from rag_report.pipeline import ReportPipeline

    index_dir = model.index_dir
    if index_dir is None:
        ckpt = EClip.from_pretrained(model.model_dir).eval()
        index_dir = str(rag_report_home() / "eval" / "indexes" / f"{ckpt.checkpoint_hash}-{len(corpus)}")
        if not is_current_index(index_dir):
            ReportIndex.build(
                ckpt,
                corpus,
                index_dir,
                progress=cfg.progress,
                label_classifiers=False,
                corpus_name="report_gen baseline corpus",
                text_features=text_feature_dir(),  # the rows' trainings stored them there
            )
    pipe_cfg = replace(
        cfg.pipeline,
        model_dir=model.model_dir,
        index_dir=index_dir,
        label_boost=model.label_boost,
        diversify=model.diversify,
        normal_statements=model.normal_statements,
        finding_statements=model.finding_statements,
    )
    return ReportPipeline(pipe_cfg, progress=cfg.progress)


def select_studies(studies: list[Study], split: str, limit: int | None) -> tuple[list[Study], int]:
    """The split's studies with report text, sorted by id, first ``limit``; and how many had no text."""
    in_split = sorted((s for s in studies if s.split == split), key=lambda s: s.study_id)
    with_text = [s for s in in_split if s.report_text.strip()]
    skipped = len(in_split) - len(with_text)
    return (with_text[:limit] if limit else with_text), skipped


@dataclass
class _Studies:
    """The studies a run drafts for and retrieves from, and the references it scores against."""

    test: list[Study]
    skipped: int  # studies of the split without report text
    corpus: list[Study]  # the train split's studies with report text
    llm_test: list[Study]  # the first llm_limit of ``test``: what the grounded LLM row drafts
    free_test: list[Study]  # the first free_limit of ``llm_test``: what the free LLM row drafts
    references: dict[str, str]
    ref_labels: dict[str, dict]


@dataclass
class _Drafted:
    """What the systems produced so far: their outputs and the facts the result records about them."""

    models: dict[str, str]
    notes: list[str]
    outputs: list[S.SystemOutput] = field(default_factory=list)
    pictures: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    classifier_scores: dict[str, Any] | None = None
    llm: Any = None  # loaded by the first LLM row, shared by the others


def run_report_gen(cfg: ReportGenConfig) -> dict[str, Any]:
    """Run the configured systems, score them, write JSON / Markdown / PNG; return the result dict."""
    cfg.validate()
    t_start = time.perf_counter()
    inputs = _Inputs(cfg)
    studies = _select(cfg, inputs.manifest)
    drafted = _Drafted(models={"manifest": str(inputs.manifest)}, notes=list(inputs.notes))
    drafted.outputs += _baseline_outputs(cfg, studies)
    for role, keys in _pipeline_systems_by_role(cfg, inputs).items():
        _run_role(cfg, role, keys, inputs.models[role], studies, drafted)
    if "oracle" in cfg.systems:
        drafted.outputs.append(S.oracle_system(studies.test, SYSTEMS["oracle"]))
    rows = _score(cfg, studies, drafted)
    result = _result(cfg, inputs, studies, drafted, rows, t_start)
    paths = _write(cfg, result, drafted.pictures, inputs.simulated)
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    log.info("wrote %s in %.0f s", ", ".join(str(p) for p in paths.values()), result["wall_seconds"])
    return result


def _select(cfg: ReportGenConfig, manifest: str) -> _Studies:
    """The test studies (and the LLM rows' subsets), the retrieval corpus and the references' labels."""
    from eclip_core.labeler import label_report

    studies = read_manifest(manifest)
    test, skipped = select_studies(studies, cfg.split, cfg.limit)
    if not test:
        raise ConfigError(f"manifest {manifest}: no {cfg.split!r} studies with report text")
    corpus = [s for s in studies if s.split == "train" and s.report_text.strip()]
    llm_test = test[: cfg.llm_limit] if cfg.llm_limit else test
    free_test = llm_test[: cfg.free_limit] if cfg.free_limit else llm_test
    log.info(
        "%d %s studies (%d without text skipped), corpus %d, LLM rows on %d",
        len(test),
        cfg.split,
        skipped,
        len(corpus),
        len(llm_test),
    )
    return _Studies(
        test,
        skipped,
        corpus,
        llm_test,
        free_test,
        references={s.study_id: s.report_text for s in test},
        ref_labels={s.study_id: label_report(s.report_text) for s in test},
    )


def _baseline_outputs(cfg: ReportGenConfig, studies: _Studies) -> list[S.SystemOutput]:
    """The rows without a model: random retrieval and the label-matched diagnostic."""
    outputs = []
    if "random" in cfg.systems:
        outputs.append(
            S.random_system(studies.test, studies.corpus, k=cfg.pipeline.k, seed=cfg.seed, name=SYSTEMS["random"])
        )
    if "label_oracle" in cfg.systems:
        outputs.append(
            S.label_matched_system(
                studies.test,
                studies.corpus,
                studies.ref_labels,
                k=cfg.pipeline.k,
                seed=cfg.seed,
                name=SYSTEMS["label_oracle"],
            )
        )
    return outputs


def _pipeline_systems_by_role(cfg: ReportGenConfig, inputs: _Inputs) -> dict[str, list[str]]:
    """The asked-for pipeline systems grouped by the model they run on, in the order clip, paper, default."""
    by_role: dict[str, list[str]] = {}
    for key in cfg.systems:
        if key in PIPELINE_SYSTEMS and PIPELINE_SYSTEMS[key][0] in inputs.models:
            by_role.setdefault(PIPELINE_SYSTEMS[key][0], []).append(key)
    return {role: by_role[role] for role in ("clip", "paper", "default") if role in by_role}


def _run_role(
    cfg: ReportGenConfig, role: str, keys: list[str], model: _Model, studies: _Studies, drafted: _Drafted
) -> None:
    """One model's pipeline: embed the test studies once, then draft every system ``keys`` asks of it."""
    test = studies.test
    pipe = _pipeline(cfg, model, studies.corpus)
    tag = {"clip": "clip_checkpoint", "paper": "eclip_paper_checkpoint", "default": "eclip_checkpoint"}[role]
    drafted.models[tag] = f"{pipe.model.checkpoint_hash} ({model.model_dir})"
    drafted.models[tag.replace("checkpoint", "index")] = (
        f"{pipe.index.manifest.get('index_id', '')} ({pipe.index.directory})"
    )
    embedded = S.embed_studies(pipe, test, progress=cfg.progress, desc=f"{role} embed")
    drafted.pictures[ROLE_NAMES[role]] = {
        "image": np.asarray(embedded.vectors),
        "text": pipe.model.embed_texts([s.report_text for s in test], progress=False),
    }
    if role == "default" and pipe.index.label_classifiers is not None:
        drafted.classifier_scores = _classifier_scores(embedded, test, studies.ref_labels)
    meta = {"checkpoint": pipe.model.checkpoint_hash, "label_boost": pipe.config.label_boost}
    default_config = role == "default" and _is_default_config(cfg.pipeline)
    for key in keys:
        mode = PIPELINE_SYSTEMS[key][1]
        subset = test
        if key in LLM_SYSTEMS and key not in cfg.full_systems:
            subset = studies.free_test if mode == "free" else studies.llm_test
        uses_llm = mode in ("grounded", "free")
        if uses_llm and drafted.llm is None:
            t0 = time.perf_counter()
            drafted.llm = pipe.llm()
            drafted.models["llm"] = (
                f"{getattr(drafted.llm, 'id', '')} ({drafted.llm.spec.quantization}; asked {cfg.pipeline.quantization})"
            )
            log.info("LLM loaded in %.1f s", time.perf_counter() - t0)
        sub = S.Embedded(
            embedded.vectors[: len(subset)], embedded.probabilities[: len(subset)], embedded.embed_ms[: len(subset)]
        )
        default_mode = pipe.resolve_mode(cfg.pipeline.mode)
        drafted.outputs.append(
            S.run_pipeline_system(
                key,
                SYSTEMS[key],
                pipe,
                subset,
                sub,
                mode,
                llm=drafted.llm if uses_llm else None,
                progress=cfg.progress,
                meta={
                    **meta,
                    "is_default": default_config and mode == default_mode,
                    **({"llm": drafted.models["llm"]} if uses_llm else {}),
                },
            )
        )


def _score(cfg: ReportGenConfig, studies: _Studies, drafted: _Drafted) -> list[dict]:
    """One table row per system output, scored against the references (new scoring notes join the run's)."""
    rows = []
    for out in drafted.outputs:
        metrics = score_system(out, studies.references, studies.ref_labels, k=cfg.pipeline.k, meteor=cfg.meteor)
        drafted.notes += [n for n in metrics.pop("notes") if n not in drafted.notes]
        rows.append(_row(out, metrics, cfg, len(studies.test), len(studies.corpus)))
    return rows


def _result(
    cfg: ReportGenConfig, inputs: _Inputs, studies: _Studies, drafted: _Drafted, rows: list[dict], t_start: float
) -> dict[str, Any]:
    """The run's result: its config, sizes, choices, notes, models, rows and paired comparisons."""
    from eval.report_gen.scoring import paired_with_top1
    from rag_report.report import SIMULATED_NOTICE

    return {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "simulated": inputs.simulated,
        "simulated_notice": SIMULATED_NOTICE if inputs.simulated else "",
        "sizes": {
            "test_studies": len(studies.test),
            "skipped_no_report": studies.skipped,
            "corpus_reports": len(studies.corpus),
            "llm_studies": len(studies.llm_test) if any(s in LLM_SYSTEMS for s in cfg.systems) else 0,
            "free_studies": len(studies.free_test) if "eclip_free" in cfg.systems else 0,
        },
        "choices": CHOICES,
        "notes": drafted.notes,
        "models": drafted.models,
        "rows": rows,
        "label_classifiers": drafted.classifier_scores,
        "paired": paired_with_top1(rows, studies.references),
        "machine": f"{platform.machine()} {platform.system()} python {platform.python_version()}",
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }


def _write(
    cfg: ReportGenConfig, result: dict[str, Any], pictures: dict[str, dict[str, np.ndarray]], simulated: bool
) -> dict[str, Path]:
    """Write the JSON, the Markdown page, the bar chart and the embedding picture; returns their paths."""
    from eval.report_gen.plots import bar_chart
    from eval.report_gen.tables import write_outputs

    paths = write_outputs(result, cfg.out_dir, cfg.name)
    title = f"{cfg.split} split" + (" (simulated images)" if simulated else "")
    paths["png"] = bar_chart(result["rows"], Path(cfg.out_dir) / f"{cfg.name}.png", title=title)
    if pictures:
        from eclip_core.quality import modality_gap
        from eval.report_gen.embedding_tables import projection_plot

        gaps = {name: float(modality_gap(e["image"], e["text"])) for name, e in pictures.items()}
        paths["embeddings_png"] = projection_plot(
            pictures,
            Path(cfg.out_dir) / f"{cfg.name}_embeddings.png",
            gaps,
            title=f"Image and report embeddings, joint PCA ({title})",
        )
    return paths


ROLE_NAMES = {"clip": "CLIP", "paper": "eCLIP (paper objective)", "default": "default model"}


def _is_default_config(pipe: PipelineConfig) -> bool:
    """The pipeline config is ``PipelineConfig()`` up to where its files are (what generate_report uses)."""
    return replace(pipe, model_dir=None, index_dir=None) == PipelineConfig()


def _classifier_scores(
    embedded: S.Embedded, studies: list[Study], ref_labels: dict[str, dict], min_positives: int = 10
) -> dict[str, Any]:
    """AUROC of the label classifiers on the test studies, per observation (those with both classes)."""
    from sklearn.metrics import roc_auc_score

    from eclip_core.labels import CHEXPERT_OBSERVATIONS

    probs = np.array(embedded.probabilities)
    per = {}
    for j, name in enumerate(CHEXPERT_OBSERVATIONS):
        truth = np.array([ref_labels[s.study_id].get(name) == 1.0 for s in studies])
        if 0 < truth.sum() < len(truth):
            per[name] = {"auroc": float(roc_auc_score(truth, probs[:, j])), "positives": int(truth.sum())}
    scored = [v["auroc"] for v in per.values() if v["positives"] >= min_positives]
    return {
        "per_observation": per,
        "min_positives": min_positives,
        "mean_auroc": float(np.mean(scored)) if scored else None,
        "n_scored": len(scored),
    }


def _row(out: S.SystemOutput, metrics: dict, cfg: ReportGenConfig, n_test: int, n_corpus: int) -> dict:
    return {
        "system": out.key,
        "name": out.name,
        "seed": cfg.seed,
        "split": cfg.split,
        "sizes": {
            "scored_studies": len(out.drafts),
            "test_studies": n_test,
            "corpus_reports": n_corpus,
            "k": cfg.pipeline.k,
        },
        "command": cfg.command,
        "meta": out.meta,
        "metrics": metrics,
        "drafts": {d.study_id: d.text for d in out.drafts},
    }
