"""The 14 CheXpert observations and the label value convention used everywhere.

Label values follow the CheXpert labeler: 1.0 positive, 0.0 negative, -1.0 uncertain,
``None`` (or NaN in arrays) not mentioned.
"""

from __future__ import annotations

CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The five observations most papers report separately (CheXpert competition tasks).
COMMON_FIVE: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

POSITIVE = 1.0
NEGATIVE = 0.0
UNCERTAIN = -1.0
