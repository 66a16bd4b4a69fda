"""From a chest X-ray to a draft report with its evidence: `ReportPipeline` and `generate_report`.

Example (builds the embedded default bundle on first use, minutes on a CPU; cached afterwards):

>>> from rag_report import generate_report                       # doctest: +SKIP
>>> draft = generate_report("chest.png")                          # doctest: +SKIP
>>> print(draft.text); draft.evidence[0].similarity               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from eclip_core.cli_config import cli
from eclip_core.data.dicom_views import header_warnings
from eclip_core.data.image_io import load_nonblank_image as read_image  # re-exported: callers import it from here
from eclip_core.labeler import label_report
from eclip_core.text import join_report
from rag_report.drafting.checker import CheckerConfig, index_thresholds
from rag_report.drafting.drafters import DRAFTERS, LLM_MODES, Drafted, DraftLimits, DraftSettings, draft_reports
from rag_report.errors import RagReportError
from rag_report.llm.precision import QUANTIZATIONS, draft_model_entries
from rag_report.protocols import DraftingLLM, ReportIndexLike, ReportLike
from rag_report.report import DraftReport, Evidence, SentenceProvenance
from rag_report.retrieval.image_views import classifier_features
from rag_report.retrieval.label_boost import LABEL_BOOST_MODES, LabelBoost

if TYPE_CHECKING:
    from rag_report.llm import FrozenLLM
    from rag_report.retrieval.retriever import RetrievedReport

log = logging.getLogger(__name__)

#: "auto" and the drafting registry's modes (rag_report.drafting.drafters.DRAFTERS), the LLM ones first.
MODES = ("auto", *LLM_MODES, *(m for m in DRAFTERS if m not in LLM_MODES))
#: Models with fewer parameters than this draft in grounded mode when mode="auto".
GROUNDED_BELOW_PARAMS = 1_000_000_000


@dataclass
class PipelineConfig(DraftLimits):
    """What to load and how to draft (the draft's limits: :class:`~rag_report.drafting.drafters.DraftLimits`, its base
    class). ``None`` paths mean the embedded default bundle.

    Every field is also a flag of ``rag-report generate``, of the Gradio app and of ``python -m
    eval.report_gen`` (eclip_core.cli_config: flag names, choices and help come from here).
    """

    #: eCLIP checkpoint folder (None: the default bundle's).
    model_dir: str | None = field(default=None, metadata=cli(flags="--model", metavar="DIR"))
    #: Report index folder built with that checkpoint (None: the default bundle's).
    index_dir: str | None = field(default=None, metadata=cli(flags="--index", metavar="DIR"))
    #: Local Hugging Face model folder or .gguf file (None: SmolLM2-135M-Instruct).
    llm_path: str | None = field(default=None, metadata=cli(flags="--llm", metavar="PATH"))
    #: LLM precision: "auto" (nf4 on CUDA / CPUs with AVX512-BF16 or AMX, else fp32), "nf4", "int8" or "none".
    quantization: str = field(default="auto", metadata=cli(choices=QUANTIZATIONS))
    #: Where models run: auto (CUDA when available), cpu, cuda or cuda:N.
    device: str = "auto"
    #: Generation mode (auto: top1; with an LLM named by --llm, grounded under 1 B parameters, else free).
    mode: str = field(default="auto", metadata=cli(choices=MODES))
    #: Retrieved reports shown and drafted from.
    k: int = 5
    #: Nearest reports considered before diversification and label boost.
    candidates: int = 100
    #: How the k reports are picked among the candidates (none: the k nearest).
    diversify: str | None = field(default="kmeans", metadata=cli(choices=("kmeans", "mmr")))
    #: Warn when the best similarity falls below this (None: the bundle's measured floor, if any).
    similarity_floor: float | None = None
    #: Warn when the image's k-NN typicality among the corpus X-rays falls below this (None: the floor the
    #: index measured on its own X-rays, if it holds an image sample; rag_report.index).
    typicality_floor: float | None = None
    #: Label boost (rag_report.retrieval.label_boost): "rerank" candidates by similarity + label_weight * agreement of
    #: their labels with the image's predicted labels, "filter" to the best-agreeing ones, or "off". Needs an
    #: index with label classifiers (else it stays off, with a warning in the draft).
    label_boost: str = field(default="rerank", metadata=cli(choices=LABEL_BOOST_MODES))
    #: Weight of label agreement in rerank (similarity + weight * agreement).
    label_weight: float = 1.0

    def validate(self) -> PipelineConfig:
        if self.mode not in MODES:
            raise RagReportError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        self.boost()  # label_boost and label_weight: LabelBoost checks them
        if self.k < 1 or self.candidates < 1:
            raise RagReportError(f"k and candidates must be >= 1, got k={self.k}, candidates={self.candidates}")
        if self.normal_statements < 0:
            raise RagReportError(f"normal_statements must be >= 0, got {self.normal_statements}")
        if self.finding_statements < 0:
            raise RagReportError(f"finding_statements must be >= 0, got {self.finding_statements}")
        return self

    def boost(self, mode: str | None = None) -> LabelBoost:
        """The label boost of this config, or with another ``mode`` (off / filter / rerank); checked."""
        return LabelBoost(mode or self.label_boost, self.label_weight)


@dataclass
class Embedded:
    """An image as drafting reads it and its eCLIP embedding, with each one's share of the batch's time (ms)."""

    pixels: np.ndarray
    vector: np.ndarray
    load_ms: float = 0.0
    embed_ms: float = 0.0
    #: What the index's label classifiers read of the image (None: compute it when drafting).
    features: np.ndarray | None = None


class ReportPipeline:
    """Loads eCLIP, the report index and the LLM once; drafts reports for many images.

    The stages are public, so a benchmark can run them one by one and get exactly what :meth:`generate`
    returns: :meth:`embed` (image -> eCLIP vector), :meth:`predict_labels` (vector and image -> probability
    of each CheXpert observation, from the index's label classifiers), :meth:`retrieve` (vector -> reports,
    label boosted) and :meth:`draft` (reports -> sentences, by mode); :meth:`generate` runs them and assembles
    the :class:`DraftReport`.

    >>> pipe = ReportPipeline()                                       # doctest: +SKIP
    >>> pipe.generate("chest.dcm", mode="consensus", k=5).impression  # doctest: +SKIP
    """

    def __init__(self, config: PipelineConfig | None = None, *, progress: bool = True) -> None:
        import torch

        from eclip_core.model import EClip
        from rag_report.index import ReportIndex
        from rag_report.retrieval.retriever import EClipRetriever

        self.config = (config or PipelineConfig()).validate()
        t0 = time.perf_counter()
        self.simulated_data = False
        floor = self.config.similarity_floor
        model_dir, index_dir = self.config.model_dir, self.config.index_dir
        if model_dir is None or index_dir is None:
            from rag_report.bundle import default_bundle

            bundle = default_bundle(build=True, progress=progress)
            model_dir = model_dir or str(bundle.eclip_dir)
            index_dir = index_dir or str(bundle.index_dir)
            self.simulated_data = True
            floor = floor if floor is not None else bundle.similarity_floor
        self.similarity_floor = floor
        # Channels-last weights: the image tower's convolutions run ~25% faster on CPU (same results to ~1e-7);
        # checkpoint hashes and saved weights are layout-free (eclip_core.weights_hash).
        self.model = EClip.from_pretrained(model_dir).eval().to(memory_format=torch.channels_last)
        self.index: ReportIndexLike = ReportIndex.load(index_dir, model=self.model)
        self.retriever = EClipRetriever(self.index, self.model)
        info = self.index.manifest.get("typicality") or {}
        self.typicality_floor: float | None = (
            self.config.typicality_floor if self.config.typicality_floor is not None else info.get("floor")
        )
        self._llms: dict[tuple, FrozenLLM] = {}
        self._lock = threading.Lock()
        #: The draft checker's settings; its image thresholds belong to the index (rag_report.drafting.checker).
        self.checker = CheckerConfig(thresholds=index_thresholds(index_dir, self.simulated_data))
        self.load_ms = (time.perf_counter() - t0) * 1000.0
        log.info("pipeline loaded in %.0f ms (index %s, %d reports)", self.load_ms, index_dir, len(self.index))

    # -- LLMs -----------------------------------------------------------------------------------
    def llm(self, path: str | None = None) -> FrozenLLM:
        """The frozen LLM for ``path`` (None = the configured one), loaded once and cached."""
        from rag_report.llm import LLMSpec, load_llm

        spec = LLMSpec(
            path=path or self.config.llm_path, quantization=self.config.quantization, device=self.config.device
        )
        key = (spec.path, spec.quantization, spec.device)
        with self._lock:
            if key not in self._llms:
                self._llms[key] = load_llm(spec)
            return self._llms[key]

    def resolve_mode(self, mode: str, llm_path: str | None = None) -> str:
        """ "auto" -> ``top1`` unless an LLM is named (``llm_path`` or the config's), then grounded for LLMs
        under 1 B parameters and free for larger ones (the named LLM is loaded to count its parameters).

        Why top-1 and not the built-in 135 M LLM: on the default bundle's validation studies its grounded
        drafts score no better than label-boosted top-1 on clinical F1 (docs/RESULTS.md) and take seconds
        each on a CPU, so the LLM runs when asked for (``mode="grounded"`` / ``"free"`` or an LLM path).
        """
        if mode != "auto":
            return mode
        path = llm_path or self.config.llm_path
        if path is None:
            return "top1"
        return "grounded" if self.llm(path).n_parameters < GROUNDED_BELOW_PARAMS else "free"

    # -- stages ---------------------------------------------------------------------------------
    def embed(self, image: Any) -> np.ndarray:
        """Load an image (path, PIL image, numpy array, DICOM path or bytes), refuse a blank one, and
        return its eCLIP embedding [D]."""
        return self.model.embed_images([read_image(image)], progress=False)[0]

    def predict_labels(self, vector: np.ndarray, image: Any = None) -> np.ndarray | None:
        """Probability [14] of each CheXpert observation for an image embedding (None: the index has no
        label classifiers). Classifiers that read the image's tiles too (``views="image+tiles"``,
        :mod:`rag_report.retrieval.image_views`) need the ``image`` (anything :meth:`embed` takes)."""
        clf = self.index.label_classifiers
        if clf is None:
            return None
        if clf.views == "image":
            return clf.predict_proba(vector)
        if image is None:
            raise RagReportError(f"the index's label classifiers read the image's tiles ({clf.views}); pass the image")
        features = classifier_features(self.model, [read_image(image)], np.asarray(vector)[None], clf.views)
        return clf.predict_proba(features[0])

    def predicted(self, probabilities: np.ndarray | None) -> dict[str, bool] | None:
        """Observation -> predicted present (each classifier's own threshold), or None."""
        clf = self.index.label_classifiers
        if clf is None or probabilities is None:
            return None
        return {name: bool(on) for name, on in zip(clf.observations, probabilities >= clf.thresholds)}

    def retrieve(
        self,
        vector: np.ndarray,
        *,
        mode: str | None = None,
        probabilities: np.ndarray | None = None,
        k: int | None = None,
        exclude_study_ids: Sequence[str] = (),
        label_boost: str | None = None,
    ) -> list[RetrievedReport]:
        """The reports a draft in ``mode`` is made from: the nearest ``k`` (top-1 takes the nearest one,
        the other modes the diversified set), label boosted when the config (or ``label_boost``, for this
        call) asks and ``probabilities`` are given."""
        cfg = self.config
        predicted = self.predicted(probabilities)
        boost = cfg.boost(label_boost) if predicted is not None else None
        return self.retriever.retrieve_vector(
            vector,
            k=k or cfg.k,
            candidates=cfg.candidates,
            diversify=None if (mode or cfg.mode) == "top1" else cfg.diversify,
            exclude_study_ids=exclude_study_ids,
            label_boost=boost,
            predicted_labels=None if predicted is None else frozenset(o for o, on in predicted.items() if on),
        )

    def draft(
        self,
        reports: Sequence[ReportLike],
        mode: str,
        *,
        probabilities: np.ndarray | None = None,
        llm: DraftingLLM | None = None,
        max_new_tokens: int | None = None,
        check: bool = True,
    ) -> Drafted:
        """Draft sentences from ``reports`` in a resolved ``mode`` (top1, consensus, grounded, free), checked
        by the draft checker (:mod:`rag_report.drafting.checker`) unless ``check`` is False (for comparison only)."""
        cfg = self.config
        limits = {f.name: getattr(cfg, f.name) for f in fields(DraftLimits)}
        limits["max_new_tokens"] = max_new_tokens or cfg.max_new_tokens
        clf = self.index.label_classifiers
        settings = DraftSettings(
            **limits,
            llm=llm,
            predicted=self.predicted(probabilities),
            probabilities=None if clf is None or probabilities is None else clf.as_dict(probabilities),
            checker=self.checker,
            check=check,
        )
        return draft_reports(mode, reports, settings)

    def embed_many(self, images: Sequence[Any], *, batch_size: int = 32) -> list[Embedded]:
        """Load and embed several images in batches (one forward pass per ``batch_size`` images, cheaper
        per image than one pass each); each result goes to :meth:`generate` as ``embedded=``. Raises
        ImageLoadError for the first unreadable or blank image (check them with :func:`read_image` first)."""
        t = time.perf_counter()
        pixels = [read_image(image) for image in images]
        load_ms = _ms(t) / max(len(pixels), 1)
        t = time.perf_counter()
        if not pixels:
            return []
        vectors = self.model.embed_images(pixels, batch_size=batch_size, progress=False)
        # The label classifiers' input too: with "image+tiles" views, the tiles of all images in one pass.
        clf = self.index.label_classifiers
        features = (
            classifier_features(self.model, pixels, vectors, clf.views, batch_size=5 * batch_size)
            if clf is not None
            else [None] * len(pixels)
        )
        embed_ms = _ms(t) / max(len(pixels), 1)
        return [Embedded(p, np.asarray(v), load_ms, embed_ms, f) for p, v, f in zip(pixels, vectors, features)]

    # -- the whole path ---------------------------------------------------------------------------
    def generate(
        self,
        image: Any,
        *,
        mode: str | None = None,
        k: int | None = None,
        max_new_tokens: int | None = None,
        llm_path: str | None = None,
        exclude_study_ids: Sequence[str] = (),
        label_boost: str | None = None,
        embedded: Embedded | None = None,
    ) -> DraftReport:
        """Draft a report for one image (path, PIL image, numpy array or DICOM path); ``label_boost``
        (off / filter / rerank) replaces the config's for this call; ``embedded`` (from :meth:`embed_many`)
        skips loading and embedding the image again.

        Raises :class:`eclip_core.errors.ImageLoadError` for unreadable or blank images; warnings
        (e.g. an image unlike the corpus) are returned in ``DraftReport.warnings``.
        """
        mode = mode or self.config.mode
        if mode not in MODES:
            raise RagReportError(f"unknown mode {mode!r}; choose one of {MODES}")
        label_boost = self.config.boost(label_boost).mode
        k = k or self.config.k
        timings: dict[str, float] = {}
        # A DICOM whose header says lateral, or not CR/DX, still drafts, with a warning (eclip_core.data.dicom_views).
        warnings: list[str] = header_warnings(image)

        if embedded is None:
            t = time.perf_counter()
            pixels = read_image(image)
            timings["load"] = _ms(t)
            t = time.perf_counter()
            query = self.model.embed_images([pixels], progress=False)[0]
            timings["embed"] = _ms(t)
        else:
            pixels, query = embedded.pixels, embedded.vector
            timings["load"], timings["embed"] = embedded.load_ms, embedded.embed_ms

        resolved = self.resolve_mode(mode, llm_path)
        llm = self.llm(llm_path) if resolved in LLM_MODES else None
        t = time.perf_counter()
        clf = self.index.label_classifiers
        probabilities: np.ndarray | None
        if embedded is not None and embedded.features is not None and clf is not None:
            probabilities = clf.predict_proba(embedded.features)
        else:
            probabilities = self.predict_labels(query, pixels)
        if probabilities is None and label_boost != "off":
            warnings.append(
                "label boost is off: the index has no label classifiers (rebuild it with "
                "`rag-report index` to fit them)"
            )
        reports = self.retrieve(
            query,
            mode=resolved,
            probabilities=probabilities,
            k=k,
            exclude_study_ids=exclude_study_ids,
            label_boost=label_boost,
        )
        timings["retrieve"] = _ms(t)
        if not reports:
            raise RagReportError("retrieval returned no reports: the index is empty after exclusions")
        if len(reports) < k:
            warnings.append(f"asked for k={k} reports but the corpus gave {len(reports)}")
        typical = self._check_typical(query, reports, warnings)

        t = time.perf_counter()
        drafted = self.draft(reports, resolved, probabilities=probabilities, llm=llm, max_new_tokens=max_new_tokens)
        timings["generate"] = _ms(t)
        warnings.extend(drafted.warnings)
        draft = self._assemble(resolved, reports, drafted, timings, warnings, llm, probabilities, label_boost)
        if typical is not None:
            draft.typicality, draft.typicality_floor = typical
        return draft

    def _check_typical(
        self, query: np.ndarray, reports: Sequence[ReportLike], warnings: list[str]
    ) -> tuple[float, float] | None:
        """(typicality of the query X-ray, the floor) when the index can tell, warning under the floor."""
        floor = self.typicality_floor
        scores = self.index.typicality(query) if floor is not None else None
        typical = None if scores is None or floor is None else (float(scores[0]), float(floor))
        if typical is not None and typical[0] < typical[1]:
            warnings.append(
                f"the image is unlike the corpus X-rays (typicality {typical[0]:.4f}, below the corpus's usual "
                f"range, floor {typical[1]:.4f}): it may not be a frontal chest X-ray like those indexed; "
                "treat the draft with suspicion"
            )
        best = max(r.similarity for r in reports)
        if self.similarity_floor is not None and best < self.similarity_floor:
            warnings.append(
                f"best similarity {best:.3f} is below the corpus's usual range (floor {self.similarity_floor:.3f}): "
                "the image may not be a frontal chest X-ray like those indexed; treat the draft with suspicion"
            )
        return typical

    def _assemble(
        self,
        mode: str,
        reports: Sequence[RetrievedReport],
        drafted: Drafted,
        timings: dict[str, float],
        warnings: list[str],
        llm: DraftingLLM | None,
        probabilities: np.ndarray | None,
        label_boost: str | None = None,
    ) -> DraftReport:
        findings, impression = drafted.findings, drafted.impression
        provenance = [SentenceProvenance(s.text, s.section, list(s.source_ids)) for s in drafted.sentences]
        used: dict[str, list[str]] = {}
        for p in provenance:
            for sid in p.source_ids:
                used.setdefault(sid, []).append(p.sentence)
        evidence = [
            Evidence(
                study_id=r.study_id,
                rank=i + 1,
                similarity=float(r.similarity),
                findings=r.findings,
                impression=r.impression,
                labels=dict(r.labels or {}),
                sentences_used=used.get(r.study_id, []),
                label_agreement=r.label_agreement,
            )
            for i, r in enumerate(reports)
        ]
        if not (findings or impression):
            warnings.append("the draft is empty")
        models = {
            "eclip_checkpoint": self.model.checkpoint_hash,
            "index_id": str(self.index.manifest.get("index_id", "")),
            "llm_id": getattr(llm, "id", "") if mode in LLM_MODES else "",
            "generation_mode": mode,
            "label_boost": (label_boost or self.config.label_boost) if probabilities is not None else "off",
            **draft_model_entries(self.config.quantization, llm if mode in LLM_MODES else None),
        }
        timings["total"] = sum(timings.values())
        clf, predicted = self.index.label_classifiers, self.predicted(probabilities)
        return DraftReport(
            findings=findings,
            impression=impression,
            evidence=evidence,
            provenance=provenance,
            labels=label_report(join_report(findings, impression)),
            timings_ms=timings,
            models=models,
            mode=mode,
            simulated_data=self.simulated_data,
            warnings=warnings,
            predicted_labels={} if clf is None or probabilities is None else clf.as_dict(probabilities),
            predicted_positive=[] if predicted is None else [name for name, on in predicted.items() if on],
            checks=list(drafted.checks),
        )


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


_DEFAULT: dict[tuple, ReportPipeline] = {}
_DEFAULT_LOCK = threading.Lock()


def generate_report(image: Any, *, config: PipelineConfig | None = None, **kwargs: Any) -> DraftReport:
    """Draft a report for ``image`` with a pipeline cached per config (default: the embedded bundle).

    Keyword arguments go to :meth:`ReportPipeline.generate` (mode, k, max_new_tokens, llm_path,
    exclude_study_ids, label_boost).

    >>> draft = generate_report("chest.png", mode="grounded", k=5)   # doctest: +SKIP
    >>> draft.to_dict()["evidence"][0]["study_id"]                   # doctest: +SKIP
    """
    config = config or PipelineConfig()
    key = tuple(sorted(vars(config).items()))  # one cached pipeline per distinct config
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = ReportPipeline(config)
        pipe = _DEFAULT[key]
    return pipe.generate(image, **kwargs)
