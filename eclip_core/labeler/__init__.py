"""The project's one CheXpert-style report labeler (used by the phantom generator, the pipeline and eval).

14 observations (:data:`eclip_core.labels.CHEXPERT_OBSERVATIONS`); values 1.0 positive, 0.0 negative,
-1.0 uncertain, None / NaN not mentioned.

>>> from eclip_core.labeler import label_report, sentence_observations
>>> sentence_observations("No evidence of pneumothorax.")
{'Pneumothorax': 0.0}
>>> label_report("Mild cardiomegaly. No pleural effusion.")["Cardiomegaly"]
1.0

An optional CheXbert model labeler (a user's local checkpoint) is :func:`chexbert_labeler`.
"""

from __future__ import annotations

from eclip_core.labeler.core import label_report, label_reports, labels_to_row, sentence_observations


def chexbert_labeler(checkpoint_path, **kwargs):
    """Load a local CheXbert checkpoint as a labeler (see :mod:`eclip_core.labeler.chexbert`)."""
    from eclip_core.labeler.chexbert import chexbert_labeler as _load

    return _load(checkpoint_path, **kwargs)


__all__ = ["label_report", "label_reports", "sentence_observations", "labels_to_row", "chexbert_labeler"]
