"""`evaluate` metric module: report-generation NLG metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr).

Loads offline from this folder: ``evaluate.load("<project>/eval/metrics/modules/cxr_nlg")``. The
computation is :func:`eval.metrics.nlg.compute_nlg` (pycocoevalcap engine, the project's text
normalisation); sacreBLEU and per-sample ROUGE-L are added. One import per line: evaluate's
dependency scanner misreads several imports on one line.
"""

import datasets
import evaluate

from eval.metrics import nlg

_DESCRIPTION = "BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr (pycocoevalcap), sacreBLEU and per-sample ROUGE-L."
_CITATION = "Chen et al., Microsoft COCO Captions: Data Collection and Evaluation Server, 2015."
_KWARGS = """
Args:
    predictions: list of generated report texts.
    references: list of reference report texts (one per prediction), or lists of texts.
    meteor: bool, compute METEOR (needs java; default True).
Returns: dict with BLEU-1..4, METEOR (None without java), ROUGE-L, CIDEr, sacreBLEU,
    rougeL_per_sample, notes, normalisation.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class CxrNlg(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references, meteor=True):
        out = nlg.compute_nlg(predictions, references, meteor=meteor)
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        if len({len(r) for r in refs}) == 1:
            out["sacreBLEU"] = nlg.sacrebleu_score(predictions, refs)
        else:
            out["sacreBLEU"] = None
            out["notes"].append("sacreBLEU skipped: samples have different numbers of references")
        out["rougeL_per_sample"] = nlg.rouge_l_per_sample(predictions, refs)
        return out
