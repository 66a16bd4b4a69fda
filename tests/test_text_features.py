"""A locked text tower's report features: one value per report, whatever the batch, the workers or the run;
stored by training and read back by the index instead of encoding the reports again."""

from __future__ import annotations

import torch

from eclip_core.config import EClipConfig
from eclip_core.model import EClip
from eclip_core.text_features import FILE_STEM, TextFeatureCache
from rag_report.index import ReportIndex
from tests.test_index import make_corpus

REPORTS = [
    "Heart size normal. Lungs clear.",
    "Small left pleural effusion. No pneumothorax.",
    "Cardiomegaly with mild vascular congestion and a much longer sentence about the spine and ribs.",
    "Right lower lobe opacity, possibly pneumonia.",
    "No acute disease.",
]


def _locked(seed: int = 0) -> EClip:
    torch.manual_seed(seed)
    return EClip(EClipConfig(name="eclip-small", lock_text=True)).eval()


def test_a_report_has_one_value_whatever_the_batch_workers_or_order():
    model = _locked()
    tokens = model.tokenize(REPORTS)
    threads = torch.get_num_threads()

    alone = TextFeatureCache(model.clip.text)
    for i in range(len(REPORTS)):
        alone.fill(tokens[i : i + 1])  # each report by itself, one worker
    together = TextFeatureCache(model.clip.text)
    mixed = torch.cat([tokens.flip(0), tokens[:2]])  # another order, with repeats
    assert together.fill(mixed, workers=3) == len(REPORTS)  # each distinct report encoded once
    assert torch.get_num_threads() == threads  # the one-thread passes gave the threads back

    assert torch.equal(alone.features(tokens), together.features(tokens))  # bit for bit
    # and the value is the tower's own pooled output for the report (trimmed to its length)
    row = tokens[2:3, : int((tokens[2] != model.clip.text.config.pad_token_id).nonzero().max()) + 1]
    with torch.no_grad():
        mask = (row != model.clip.text.config.pad_token_id).long()
        direct = model.clip.text.pooler(model.clip.text.transformer(input_ids=row, attention_mask=mask), mask)[0]
    torch.testing.assert_close(together.features(tokens[2:3])[0], direct, atol=1e-5, rtol=1e-5)


def test_precomputed_features_are_what_a_lazy_pass_gives():
    eager, lazy = _locked(), _locked()
    assert eager.enable_text_feature_cache() and lazy.enable_text_feature_cache()
    assert eager.precompute_text_features(REPORTS + REPORTS[:1], workers=2) == len(REPORTS)
    assert eager.precompute_text_features(REPORTS) == 0
    assert torch.equal(eager.encode_text(REPORTS), lazy.encode_text(REPORTS))


def test_the_index_reads_the_features_training_stored(tmp_path):
    corpus = make_corpus(12)
    texts = [s.report_text for s in corpus]
    trained = _locked()
    assert trained.use_text_features(None)
    trained.precompute_text_features(texts)
    store = trained.save_text_feature_cache(tmp_path / "store")
    assert store is not None and store.name.startswith(FILE_STEM)
    want = trained.encode_text(texts).detach().numpy()

    passes: list[int] = []
    fresh = _locked()  # the same weights, as the saved checkpoint loads them
    fresh.clip.text.transformer.register_forward_hook(lambda *a: passes.append(1))
    index = ReportIndex.build(
        fresh, corpus, tmp_path / "idx", progress=False, label_classifiers=False, text_features=tmp_path / "store"
    )
    assert passes == []  # every report came from the store
    got = index.vectors([s.study_id for s in corpus])
    assert got.shape == want.shape
    assert abs(got - want).max() < 1e-5

    other = _locked()
    other.clip.text.transformer.register_forward_hook(lambda *a: passes.append(1))
    ReportIndex.build(other, corpus, tmp_path / "idx2", progress=False, label_classifiers=False)
    assert passes  # without the folder: the reports are encoded
