"""The report index: eCLIP text-tower embeddings of reports in a LlamaIndex VectorStoreIndex over FAISS.

One folder on disk holds everything, replaced crash-safely (a kill at any instant leaves a complete old or
new index for :meth:`ReportIndex.load`; see eclip_core.safe_dir):

* ``default__vector_store.json``: the FAISS index (binary, LlamaIndex's file name), row i = report i;
* ``docstore.json`` / ``index_store.json``: LlamaIndex's docstore (one TextNode per report, id =
  study_id, sections / labels / view / split / simulated as metadata) and the row -> node map;
* ``image_sample.npy`` (when the corpus X-rays were readable): their unit eCLIP embeddings (typicality);
* ``label_classifiers.json`` (when fitted): per-observation classifiers over the corpus X-ray embeddings,
  used by label boost (:mod:`rag_report.retrieval.label_classifiers`, :mod:`rag_report.retrieval.label_boost`);
* ``manifest.json``: eCLIP checkpoint hash, dim, normalisation, corpus, count, index type, search
  parameters, build time, versions, ``index_id``, and ``files``: the size and sha256 of every other file,
  verified by :meth:`ReportIndex.load` (CorruptIndexError naming a truncated or damaged file).

Metadata is excluded from embedding (and from LLM context), so the vector of a report is exactly the
text tower applied to the stored text. Vectors are L2-normalised and every index type scores by inner
product, i.e. cosine similarity. Modality centering (on by default when the corpus has readable X-rays)
removes the modality gap (:mod:`rag_report.index.centering`); what it does to retrieval and drafting on
the default bundle: docs/results/report_gen.md.

The modules, in the order a build uses them:

* :mod:`~rag_report.index.nodes`: studies -> LlamaIndex TextNodes;
* :mod:`~rag_report.index.corpus_images`: the corpus's own X-rays, embedded and sampled;
* :mod:`~rag_report.index.classifier_fit`: the label classifiers fitted on them;
* :mod:`~rag_report.index.typicality` and :mod:`~rag_report.index.centering`: what the image sample gives;
* :mod:`~rag_report.index.faiss_backend`: the FAISS kinds, search settings and the GPU;
* :mod:`~rag_report.index.manifest`, :mod:`~rag_report.index.files`, :mod:`~rag_report.index.store`: the
  folder written, recorded, verified and read back;
* :mod:`~rag_report.index.report_index`: :class:`ReportIndex`, the one class callers use.

>>> from eclip_core.model import EClip                                  # doctest: +SKIP
>>> from eclip_core.data.manifest import read_manifest                  # doctest: +SKIP
>>> model = EClip.from_config("eclip-tiny")                             # doctest: +SKIP
>>> idx = ReportIndex.build(model, read_manifest("m.csv"), "idx")       # doctest: +SKIP
>>> idx = ReportIndex.load("idx", model=model)                          # doctest: +SKIP
>>> scores, ids = idx.search(model.embed_texts(["No acute disease."]), k=3)  # doctest: +SKIP
"""

from rag_report.index.centering import MODALITIES
from rag_report.index.classifier_fit import fit_label_classifiers
from rag_report.index.faiss_backend import (
    INDEX_TYPES,
    IndexParams,
    gpu_available,
    ivfpq_shape,
    make_faiss_index,
    set_search_params,
    train_faiss_index,
)
from rag_report.index.files import FAISS_FILE, IMAGE_SAMPLE_FILE, MANIFEST, REQUIRED_FILES, verify_files
from rag_report.index.manifest import FORMAT_VERSION, is_current_index
from rag_report.index.nodes import METADATA_KEYS, study_to_node
from rag_report.index.report_index import ReportIndex
from rag_report.index.typicality import TYPICALITY_K, typicality_scores
from rag_report.retrieval.label_classifiers import FILE_NAME as LABEL_CLASSIFIERS_FILE

__all__ = [
    "FAISS_FILE",
    "FORMAT_VERSION",
    "IMAGE_SAMPLE_FILE",
    "INDEX_TYPES",
    "LABEL_CLASSIFIERS_FILE",
    "MANIFEST",
    "METADATA_KEYS",
    "MODALITIES",
    "REQUIRED_FILES",
    "TYPICALITY_K",
    "IndexParams",
    "ReportIndex",
    "fit_label_classifiers",
    "gpu_available",
    "is_current_index",
    "ivfpq_shape",
    "make_faiss_index",
    "set_search_params",
    "study_to_node",
    "train_faiss_index",
    "typicality_scores",
    "verify_files",
]
