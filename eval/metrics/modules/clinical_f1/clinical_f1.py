"""`evaluate` metric module: clinical F1 with the project's CheXpert-style labeler.

Loads offline from this folder: ``evaluate.load("<project>/eval/metrics/modules/clinical_f1")``.
Micro/macro F1 over the 14 CheXpert observations and over the 5 common ones, under both uncertain
policies; each key names its policy, e.g. ``uncertain_as_negative/micro_f1_14``. Not mentioned counts
as negative. The computation is :func:`eval.metrics.clinical.clinical_f1_from_texts`. One import per
line: evaluate's dependency scanner misreads several imports on one line.
"""

import datasets
import evaluate

from eval.metrics import clinical

_DESCRIPTION = "Clinical micro/macro F1 (14 and 5 observations) under both uncertain-label policies."
_CITATION = "Irvin et al., CheXpert, AAAI 2019 (labeler conventions)."
_KWARGS = """
Args:
    predictions: list of generated report texts.
    references: list of reference report texts.
Returns: dict "<policy>/<column>" -> float for policy in (uncertain_as_negative,
    uncertain_as_positive) and column in (micro_f1_14, macro_f1_14, micro_f1_5, macro_f1_5), plus
    "<policy>/per_observation" (name -> F1) and "policies".
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ClinicalF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        result = clinical.clinical_f1_from_texts(predictions, references)
        out = {"policies": list(result)}
        for policy, scores in result.items():
            for key, value in scores.items():
                if key != "policy":
                    out[f"{policy}/{key}"] = value
        return out
