"""Optional CheXbert labeler from a user's local checkpoint (never needed by default, never downloaded).

CheXbert (Smit et al., 2020) is a BERT-base encoder whose [CLS] vector feeds 14 linear heads: 13 heads
with 4 classes (blank, positive, negative, uncertain) for the observations and one 2-class head
(blank, positive) for "No Finding". Its published checkpoint (``chexbert.pth``) is a ``torch.save``
dict with ``model_state_dict`` whose keys look like ``module.bert.embeddings...`` and
``module.linear_heads.<i>.weight`` (DataParallel prefix). Heads come in CheXbert's order
(:data:`CHEXBERT_ORDER`); outputs are returned in this project's order with its value convention.

The BERT configuration and WordPiece vocabulary (bert-base-uncased's ``config.json`` + ``vocab.txt``)
must be local too: pass ``bert_dir`` or put the two files next to the checkpoint.

>>> CHEXBERT_ORDER[-1]
'No Finding'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from eclip_core.errors import CheckpointError
from eclip_core.labels import CHEXPERT_OBSERVATIONS

log = logging.getLogger(__name__)


#: Head order of the CheXbert checkpoint: the CheXpert observations with No Finding last.
CHEXBERT_ORDER: tuple[str, ...] = (*CHEXPERT_OBSERVATIONS[1:], "No Finding")
#: CheXbert class index -> project value (NaN = blank / not mentioned).
CLASS_VALUES = (np.nan, 1.0, 0.0, -1.0)
MAX_TOKENS = 512


def _build_module(config, n_heads: int = 14):
    import torch
    from transformers import BertModel

    class CheXbertModel(torch.nn.Module):
        """BERT + 13 four-way heads + one two-way head, as in the CheXbert paper's code layout."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config)
            hidden = config.hidden_size
            self.dropout = torch.nn.Dropout(0.1)
            heads = [torch.nn.Linear(hidden, 4) for _ in range(n_heads - 1)] + [torch.nn.Linear(hidden, 2)]
            self.linear_heads = torch.nn.ModuleList(heads)

        def forward(self, input_ids, attention_mask):
            cls = self.dropout(self.bert(input_ids, attention_mask=attention_mask)[0][:, 0, :])
            return [head(cls) for head in self.linear_heads]

    return CheXbertModel()


class CheXbertLabeler:
    """A loaded CheXbert model with the same API as :mod:`eclip_core.labeler` (label_report/label_reports)."""

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 16) -> None:
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self._cols = [CHEXBERT_ORDER.index(name) for name in CHEXPERT_OBSERVATIONS]

    @staticmethod
    def _clean(text: str | None) -> str:
        return re.sub(r"\s+", " ", (text or "").replace("\n", " ")).strip()

    def label_reports(self, texts: Iterable[str | None]) -> np.ndarray:
        """[n, 14] float in CHEXPERT_OBSERVATIONS order; NaN = not mentioned (blank)."""
        import torch

        texts = [self._clean(t) for t in texts]
        out = np.full((len(texts), len(CHEXPERT_OBSERVATIONS)), np.nan)
        for lo in range(0, len(texts), self.batch_size):
            batch = texts[lo : lo + self.batch_size]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
            classes = np.stack([lg.argmax(-1).cpu().numpy() for lg in logits], axis=1)  # [b, 14] CheXbert order
            values = np.vectorize(lambda c: CLASS_VALUES[c])(classes).astype(float)
            out[lo : lo + len(batch)] = values[:, self._cols]
        return out

    def label_report(self, text: str | None) -> dict[str, float | None]:
        row = self.label_reports([text])[0]
        return {name: (None if np.isnan(v) else float(v)) for name, v in zip(CHEXPERT_OBSERVATIONS, row)}


def _find_bert_dir(checkpoint: Path, bert_dir: str | Path | None) -> Path:
    candidates = [Path(bert_dir)] if bert_dir is not None else [checkpoint.parent]
    for folder in candidates:
        if (folder / "config.json").is_file() and (folder / "vocab.txt").is_file():
            return folder
    where = candidates[0]
    raise CheckpointError(
        f"CheXbert needs bert-base-uncased's config.json and vocab.txt locally; not found in {where}. "
        "Pass bert_dir=<folder with both files> (nothing is downloaded)."
    )


def chexbert_labeler(
    checkpoint_path: str | Path, bert_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 16
) -> CheXbertLabeler:
    """Load a local CheXbert checkpoint (``.pth``/``.pt`` file, or a folder holding one).

    Raises :class:`~eclip_core.errors.CheckpointError` naming the path when the checkpoint, the BERT
    config or the vocabulary is missing, or when the weights do not fit the CheXbert layout.

    >>> chexbert_labeler("/nonexistent/chexbert.pth")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eclip_core.errors.CheckpointError: CheXbert checkpoint not found: /nonexistent/chexbert.pth ...
    """
    path = Path(checkpoint_path).expanduser()
    if path.is_dir():
        found = sorted([*path.glob("*.pth"), *path.glob("*.pt")])
        if not found:
            raise CheckpointError(f"no CheXbert checkpoint (*.pth / *.pt) in folder {path}")
        path = found[0]
    if not path.is_file():
        raise CheckpointError(
            f"CheXbert checkpoint not found: {path} (give the local path of chexbert.pth; "
            "the rule labeler eclip_core.labeler needs no checkpoint)"
        )
    folder = _find_bert_dir(path, bert_dir)

    import torch
    from transformers import BertConfig, BertTokenizer

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"could not read CheXbert checkpoint {path}: {exc}") from exc
    state = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (expected a dict with 'model_state_dict')")
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    heads = sorted({int(m.group(1)) for k in state if (m := re.match(r"linear_heads\.(\d+)\.", k))})
    if heads != list(range(len(CHEXBERT_ORDER))):
        raise CheckpointError(f"{path} does not have CheXbert's 14 linear heads (found heads {heads})")

    model = _build_module(BertConfig.from_pretrained(str(folder)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("bert.pooler.")]  # the pooler is unused
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # old transformers buffers
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the CheXbert layout with {folder / 'config.json'}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
    log.info("loaded CheXbert labeler from %s (BERT config %s)", path, folder)
    return CheXbertLabeler(model, tokenizer, device=device, batch_size=batch_size)


__all__ = ["chexbert_labeler", "CheXbertLabeler", "CHEXBERT_ORDER", "CLASS_VALUES"]
