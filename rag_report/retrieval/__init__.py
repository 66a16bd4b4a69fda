"""Retrieval: an X-ray -> the reports a draft is made from.

A draft passes the modules in this order:

1. :mod:`~rag_report.retrieval.image_views`: what the label classifiers read of the X-ray (its embedding,
   optionally with its tiles' embeddings);
2. :mod:`~rag_report.retrieval.embedding`: eCLIP's towers as a LlamaIndex embedding model (the image and
   the reports in one space);
3. :mod:`~rag_report.retrieval.retriever`: :class:`EClipRetriever` searches the report index
   (:mod:`rag_report.index`) for the nearest reports, then
4. :mod:`~rag_report.retrieval.label_classifiers`: predicts the image's CheXpert observations,
5. :mod:`~rag_report.retrieval.label_boost`: re-ranks or filters the candidates by label agreement, and
6. :mod:`~rag_report.retrieval.diversify`: keeps k diverse, de-duplicated reports (k-means, MMR).

The retrieved reports then go to :mod:`rag_report.drafting`. The names below are re-exported lazily (importing
this package loads neither torch nor LlamaIndex); :func:`diversify.diversify` keeps its module's path.

>>> from rag_report.retrieval import agreement, positive_set
>>> agreement(positive_set({"Edema": 1.0, "Cardiomegaly": 1.0}), frozenset({"Edema"}))
0.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_report.lazy import lazy_exports

if TYPE_CHECKING:
    from rag_report.retrieval.diversify import dedupe_key as dedupe_key
    from rag_report.retrieval.diversify import dedupe_positions as dedupe_positions
    from rag_report.retrieval.diversify import kmeans as kmeans
    from rag_report.retrieval.diversify import kmeans_select as kmeans_select
    from rag_report.retrieval.diversify import mmr_select as mmr_select
    from rag_report.retrieval.embedding import EClipEmbedding as EClipEmbedding
    from rag_report.retrieval.embedding import NoModelError as NoModelError
    from rag_report.retrieval.embedding import configure_llama_settings as configure_llama_settings
    from rag_report.retrieval.embedding import unit_rows as unit_rows
    from rag_report.retrieval.image_views import CLASSIFIER_VIEWS as CLASSIFIER_VIEWS
    from rag_report.retrieval.image_views import classifier_features as classifier_features
    from rag_report.retrieval.image_views import image_tiles as image_tiles
    from rag_report.retrieval.label_boost import LABEL_BOOST_MODES as LABEL_BOOST_MODES
    from rag_report.retrieval.label_boost import LabelBoost as LabelBoost
    from rag_report.retrieval.label_boost import agreement as agreement
    from rag_report.retrieval.label_boost import boost_order as boost_order
    from rag_report.retrieval.label_boost import check_label_boost as check_label_boost
    from rag_report.retrieval.label_boost import positive_set as positive_set
    from rag_report.retrieval.label_boost import predicted_set as predicted_set
    from rag_report.retrieval.label_classifiers import LabelClassifiers as LabelClassifiers
    from rag_report.retrieval.label_classifiers import best_f1_threshold as best_f1_threshold
    from rag_report.retrieval.retriever import DIVERSIFY_METHODS as DIVERSIFY_METHODS
    from rag_report.retrieval.retriever import EClipRetriever as EClipRetriever
    from rag_report.retrieval.retriever import RetrievalWarning as RetrievalWarning
    from rag_report.retrieval.retriever import RetrievedReport as RetrievedReport

# the modules of this room -> the names each defines (kept equal to the imports above by tests/test_rooms.py)
_MODULES: dict[str, tuple[str, ...]] = {
    "image_views": ("CLASSIFIER_VIEWS", "classifier_features", "image_tiles"),
    "embedding": ("EClipEmbedding", "NoModelError", "configure_llama_settings", "unit_rows"),
    "retriever": ("DIVERSIFY_METHODS", "EClipRetriever", "RetrievalWarning", "RetrievedReport"),
    "label_classifiers": ("LabelClassifiers", "best_f1_threshold"),
    "label_boost": (
        "LABEL_BOOST_MODES",
        "LabelBoost",
        "agreement",
        "boost_order",
        "check_label_boost",
        "positive_set",
        "predicted_set",
    ),
    "diversify": ("dedupe_key", "dedupe_positions", "kmeans", "kmeans_select", "mmr_select"),
}
__all__, __getattr__ = lazy_exports(__name__, _MODULES)
