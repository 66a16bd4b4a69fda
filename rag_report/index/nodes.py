"""Studies as LlamaIndex nodes: one TextNode per report, its metadata kept out of what is embedded.

>>> node = study_to_node(Study("s1", [], "train", findings="Clear lungs.", impression="Normal."))
>>> node.id_, node.metadata["labels"]["No Finding"]
('s1', 1.0)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from llama_index.core.schema import TextNode

from eclip_core.data.manifest import Study
from eclip_core.data.study_labels import study_labels
from rag_report.errors import RagReportError

log = logging.getLogger(__name__)

# Every metadata key is kept out of the embedded and the LLM-visible text: embed exactly what is stored.
METADATA_KEYS = ("study_id", "findings", "impression", "labels", "view", "split", "simulated")


def study_to_node(study: Study) -> TextNode:
    """The TextNode of one report: id = study_id, text = Study.report_text, metadata excluded from embedding.

    Its labels are the manifest's where given, else the labeler's reading of the report (label boost
    compares them with the image's predicted labels, so every report needs them)."""
    metadata = {
        "study_id": study.study_id,
        "findings": study.findings,
        "impression": study.impression,
        "labels": study_labels(study),
        "view": study.view,
        "split": study.split,
        "simulated": bool((study.meta or {}).get("simulated", False)),
    }
    return TextNode(
        id_=study.study_id,
        text=study.report_text,
        metadata=metadata,
        excluded_embed_metadata_keys=list(METADATA_KEYS),
        excluded_llm_metadata_keys=list(METADATA_KEYS),
    )


def corpus_nodes(studies: Sequence[Study]) -> list[TextNode]:
    """The nodes of every study with report text (skipped ones are logged); duplicate ids are refused."""
    nodes, seen, dupes, empty = [], set(), [], 0
    for s in studies:
        if s.study_id in seen:
            dupes.append(s.study_id)
            continue
        seen.add(s.study_id)
        if not s.report_text.strip():
            empty += 1
            continue
        nodes.append(study_to_node(s))
    if dupes:
        raise RagReportError(f"duplicate study_id(s) in the corpus: {sorted(set(dupes))[:10]}; ids must be unique")
    if empty:
        log.warning("skipped %d studies with no report text (nothing to embed)", empty)
    return nodes
