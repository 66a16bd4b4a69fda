"""Evidence-constrained ("grounded") drafting: the LLM composes a report from retrieved sentences only.

How it works (docs/ARCHITECTURE.md, "Generation modes"):

1. Candidates: the normalised sentences of the retrieved reports, per section (FINDINGS / IMPRESSION),
   merged across reports, each with its source report ids and a *support* in (0, 1]: the
   similarity-weighted fraction of retrieved reports that agree with it (same sentence, a near-duplicate,
   or the same observations with the same polarity per ``eclip_core.labeler.sentence_observations``).
2. A token trie per section over the candidates' token ids (each tokenised with a leading space, as it
   follows "FINDINGS:" or the previous sentence).
3. Each section has its own prompt, as in LaB-RAG (:func:`section_prompt`): that section of each retrieved
   report after its labels ("Labels: X, Y"), the image's predicted labels, for the impression the findings
   just drafted, and the assistant turn forced to start with the section's header. It is encoded once;
   decoding extends its KV cache. At each sentence boundary the LLM chooses between the
   first tokens of the allowed candidates and END (next section / end of turn); inside a sentence only
   tokens continuing an allowed candidate are allowed, and the sentence ends when a candidate completes.
   Once only one candidate remains on the path, its remaining tokens are fed in one forward pass.
4. Scores are the LLM's log-probabilities plus ``agreement_weight * log(support)`` (a log-prior from the
   agreement across retrieved reports); END gets ``agreement_weight * log(p_stop)``, p_stop being the
   weighted fraction of retrieved reports whose section is no longer than what is drafted so far.
5. Blocking: a candidate is not allowed once it adds nothing (its observations with the same polarity are
   all already stated in the section, or its text nearly duplicates an emitted sentence), or when it
   contradicts an emitted sentence (same observation, other polarity). END is not allowed before
   ``min_per_section`` sentences of a section with candidates; caps bound the length.

Every output sentence is exactly one candidate, so it carries the ids of the reports it came from.

>>> from rag_report.llm import load_llm                          # doctest: +SKIP
>>> reports = [{"study_id": "CXR1", "similarity": 0.61, "findings": "Heart size normal. No effusion.",
...             "impression": "No acute disease."}]              # doctest: +SKIP
>>> draft = grounded_draft(load_llm(), reports)                  # doctest: +SKIP
>>> draft.findings, draft.sentences[0].source_ids                 # doctest: +SKIP
('Heart size normal. No effusion.', ['CXR1'])
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from rag_report.drafting.candidates import (
    _NEUTRAL,
    NO_FINDING,
    _contradicts,
    _covered,
    build_candidates,
    contained_in,
    default_observations,
    near_duplicate,
)
from rag_report.drafting.grounded_types import (
    SECTIONS,
    Candidate,
    GroundedConfig,
    GroundedDraft,
    GroundedSentence,
)
from rag_report.drafting.prompts import (
    HEADERS,
    SYSTEM_RADIOLOGIST,
    section_user_message,
)
from rag_report.errors import EmptyCorpusError
from rag_report.protocols import DraftingLLM, ReportInput

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# Trie


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    members: list[int] = field(default_factory=list)  # candidates whose tokens pass through this node
    terminal: list[int] = field(default_factory=list)  # candidates that end here


def build_trie(token_seqs: Sequence[Sequence[int]]) -> _Node:
    """A token trie; node.members lists every sequence index below (or ending at) the node."""
    root = _Node()
    for idx, seq in enumerate(token_seqs):
        node = root
        node.members.append(idx)
        for tok in seq:
            node = node.children.setdefault(int(tok), _Node())
            node.members.append(idx)
        node.terminal.append(idx)
    return root


# ----------------------------------------------------------------------------------------------------
# Decoding


class _Decoder:
    """Greedy constrained decoding over a growing KV cache (batch of one)."""

    def __init__(self, llm: DraftingLLM, prompt_ids: list[int]):
        self.llm = llm
        self.cache: Any = None  # the model's KV cache (a transformers Cache)
        self.passes = 0
        self.last = self._feed(prompt_ids, keep=1)[-1]

    @torch.inference_mode()
    def _feed(self, ids: Sequence[int], keep: int) -> torch.Tensor:
        """Feed tokens; return log-probs [keep, vocab] of the last ``keep`` positions."""
        x = torch.tensor([list(ids)], device=self.llm.device)
        # transformers 5.x names the KV cache `cache` (past_key_values is a deprecated alias); only the
        # last rows' logits are materialised (a 500-token prompt x 49k vocabulary would cost 100 MB).
        out = self.llm.model(input_ids=x, cache=self.cache, use_cache=True, logits_to_keep=keep)
        self.cache = out.cache
        self.passes += 1
        return torch.log_softmax(out.logits[0, -keep:].float(), dim=-1)

    def feed(self, ids: Sequence[int]) -> float:
        """Feed forced tokens; return their summed log-prob under the model."""
        lp = float(self.last[ids[0]])
        rows = self._feed(ids, keep=len(ids))
        for i in range(1, len(ids)):
            lp += float(rows[i - 1, ids[i]])
        self.last = rows[-1]
        return lp


def _log(x: float) -> float:
    return math.log(max(x, 1e-9))


def grounded_draft(
    llm: DraftingLLM,
    reports: Sequence[ReportInput],
    config: GroundedConfig | None = None,
    predicted: Mapping[str, bool] | None = None,
) -> GroundedDraft:
    """Draft a report whose every sentence is a sentence of ``reports`` (see the module docstring).

    ``predicted`` (observation -> predicted present, from the image's label classifiers) makes the draft
    follow the image: a candidate that states an observation against the prediction (present when
    predicted absent, absent when predicted present, a normal study when findings are predicted) is not
    allowed, and while a predicted finding is not yet stated and a candidate states it, the draft may not
    end (and, when the length caps would otherwise cut it off, such a candidate is stated next).

    ``llm``: a :class:`rag_report.llm.FrozenLLM` (any :class:`rag_report.protocols.DraftingLLM` works).
    ``reports``: retrieved reports, most similar first (objects or dicts with study_id, similarity,
    findings, impression).
    Raises :class:`~rag_report.errors.EmptyCorpusError` when the reports hold no usable sentence.
    """
    cfg = config or GroundedConfig()
    t0 = time.perf_counter()
    obs_fn = cfg.observations if cfg.observations is not None else default_observations()
    cands, parsed = build_candidates(reports, llm.encode, cfg, obs_fn)
    active_sections = [s for s in SECTIONS if cands[s]]
    if not active_sections:
        raise EmptyCorpusError(
            f"Grounded decoding got {len(reports)} retrieved report(s) with no usable sentence in their "
            "findings or impression; retrieve from a corpus with report text or use another mode."
        )
    eos = list(llm.eos_token_ids) or llm.encode("\n")[:1]

    emitted: list[GroundedSentence] = []
    stated_all: dict[str, set[float]] = {}
    n_prompt, n_passes = 0, 0
    for section in active_sections:
        findings = " ".join(e.text for e in emitted if e.section == "findings")
        prompt_ids = section_prompt(llm, reports, section, cfg, predicted, findings)
        n_prompt += len(prompt_ids)
        dec = _Decoder(llm, prompt_ids)
        end_ids = eos
        sec_cands = cands[section]
        trie = build_trie([c.token_ids for c in sec_cands])
        used: set[int] = set()
        stated_sec: dict[str, set[float]] = {}
        sec_words: list[frozenset[str]] = []
        lengths = [(rep.weight, len(rep.sections[section])) for rep in parsed]
        cap = min(cfg.max_per_section[SECTIONS.index(section)], cfg.max_sentences - len(emitted))
        n = 0
        while n < cap:
            active = _allowed(
                sec_cands, used, stated_sec, stated_all, sec_words, [s.text for s in emitted], cfg, predicted
            )
            if not active and n < cfg.min_per_section:
                # Never an empty section: relax the support floor, then the blocking.
                relaxed = replace(cfg, min_support=0.0)
                active = _allowed(
                    sec_cands, used, stated_sec, stated_all, sec_words, [s.text for s in emitted], relaxed, predicted
                )
                done = {e.text.lower() for e in emitted}
                active = active or {i for i, c in enumerate(sec_cands) if i not in used and c.text.lower() not in done}
            if not active:
                break
            covering = _covering(sec_cands, active, predicted, stated_all)
            if covering and len(covering) >= cap - n:
                active = set().union(*covering.values())  # the last slots go to predicted findings
            choice = _choose_sentence(
                dec,
                trie,
                sec_cands,
                active,
                cfg,
                end_ids,
                can_end=n >= cfg.min_per_section and not covering,
                p_stop=sum(w for w, m in lengths if m <= n),
            )
            if choice is None:
                break
            idx, lp = choice
            cand = sec_cands[idx]
            used.add(idx)
            for k, v in cand.observations.items():
                stated_sec.setdefault(k, set()).add(v)
                stated_all.setdefault(k, set()).add(v)
            sec_words.append(cand.words)
            emitted.append(
                GroundedSentence(cand.text, section, list(cand.source_ids), cand.support, lp, list(cand.token_ids))
            )
            n += 1
        n_passes += dec.passes
    secs = time.perf_counter() - t0
    log.info(
        "Grounded draft: %d sentences from %s candidates, %d forward passes, %.2f s",
        len(emitted),
        {s: len(c) for s, c in cands.items()},
        n_passes,
        secs,
    )
    return GroundedDraft(
        emitted,
        {s: len(c) for s, c in cands.items()},
        n_prompt,
        n_passes,
        secs,
        str(getattr(llm, "id", "?")),
        obs_fn is not None,
    )


def section_prompt(
    llm: DraftingLLM,
    reports: Sequence[ReportInput],
    section: str,
    config: GroundedConfig | None = None,
    predicted: Mapping[str, bool] | None = None,
    findings: str = "",
) -> list[int]:
    """Token ids of the prompt that drafts ``section`` (:func:`rag_report.drafting.prompts.section_user_message`,
    the assistant turn opened with the section header): the retrieved reports' labels and that section of
    each, the image's ``predicted`` labels (when given) and, for the impression, the drafted ``findings``."""
    cfg = config or GroundedConfig()
    names = None if predicted is None else [o for o, on in predicted.items() if on]
    user = section_user_message(
        reports,
        section,
        predicted=names,
        findings=findings or None,
        max_reports=cfg.max_prompt_reports,
        max_chars=cfg.max_prompt_chars,
    )
    return llm.encode(llm.chat_prompt(user, SYSTEM_RADIOLOGIST, assistant_prefix=HEADERS[section]))


def _against_prediction(obs: dict[str, float], predicted: Mapping[str, bool]) -> bool:
    """The sentence states an observation against the image's predicted labels."""
    findings_predicted = any(on for name, on in predicted.items() if name not in _NEUTRAL)
    for name, value in obs.items():
        if name == NO_FINDING:
            if value == 1.0 and findings_predicted:
                return True
            continue
        if name not in predicted:
            continue
        if (value != 0.0) != bool(predicted[name]):
            return True
    return False


def _covering(
    cands: list[Candidate], active: set[int], predicted: Mapping[str, bool] | None, stated_all: dict[str, set[float]]
) -> dict[str, set[int]]:
    """Predicted findings not yet stated as present -> the active candidates that state them."""
    if not predicted:
        return {}
    out: dict[str, set[int]] = {}
    for name, on in predicted.items():
        if not on or name == NO_FINDING or 1.0 in stated_all.get(name, ()):
            continue
        idx = {i for i in active if cands[i].observations.get(name) == 1.0}
        if idx:
            out[name] = idx
    return out


def _allowed(
    cands: list[Candidate],
    used: set[int],
    stated_sec: dict[str, set[float]],
    stated_all: dict[str, set[float]],
    sec_words: list[frozenset[str]],
    emitted_texts: list[str],
    cfg: GroundedConfig,
    predicted: Mapping[str, bool] | None = None,
) -> set[int]:
    """Indices of candidates that may be stated next."""
    emitted_lower = {t.lower() for t in emitted_texts}
    ok = set()
    for i, c in enumerate(cands):
        if i in used or c.text.lower() in emitted_lower:
            continue
        if predicted and _against_prediction(c.observations, predicted):
            continue
        if cfg.block_redundant:
            if _contradicts(c.observations, stated_all) or _covered(c.observations, stated_sec):
                continue
            if any(
                near_duplicate(c.words, w, cfg.near_duplicate) or contained_in(c.words, w, cfg.contained)
                for w in sec_words
            ):
                continue
        if c.support < cfg.min_support:
            continue
        ok.add(i)
    return ok


def _prior(node: _Node, cands: list[Candidate], active: set[int]) -> float | None:
    sup = [cands[i].support for i in node.members if i in active]
    return _log(max(sup)) if sup else None


def _choose_sentence(
    dec: _Decoder,
    root: _Node,
    cands: list[Candidate],
    active: set[int],
    cfg: GroundedConfig,
    end_ids: list[int],
    can_end: bool,
    p_stop: float,
) -> tuple[int, float] | None:
    """Decode one sentence under the trie (or END -> None); returns (candidate index, log-prob)."""
    lam = cfg.agreement_weight
    lp_vec = dec.last
    best_tok, best = None, -math.inf
    for tok, child in root.children.items():
        prior = _prior(child, cands, active)
        if prior is not None and float(lp_vec[tok]) + lam * prior > best:
            best_tok, best = tok, float(lp_vec[tok]) + lam * prior
    if can_end:
        end_lp = float(torch.logsumexp(lp_vec[end_ids], dim=0))
        if end_lp + lam * _log(p_stop) + cfg.end_bias > best or best_tok is None:
            return None
    if best_tok is None:
        return None
    node, path_lp, depth, tok = root, 0.0, 0, best_tok
    while True:
        child = node.children[tok]
        remaining = [i for i in child.members if i in active]
        if len(remaining) == 1:
            # One candidate left on this path: feed its remaining tokens in one forward pass.
            idx = remaining[0]
            return idx, path_lp + dec.feed(list(cands[idx].token_ids[depth:]))
        path_lp += dec.feed([tok])
        depth += 1
        node = child
        live = {t: ch for t, ch in node.children.items() if any(i in active for i in ch.members)}
        done = [i for i in node.terminal if i in active]
        if done and not live:
            return done[0], path_lp
        lp_vec = dec.last
        scores = {t: float(lp_vec[t]) + lam * (_prior(ch, cands, active) or 0.0) for t, ch in live.items()}
        tok = max(scores, key=scores.__getitem__)
        if done:
            # A candidate completes here and a longer one continues: ending is worth the mass of whatever
            # may follow a finished sentence (another sentence start or END).
            starts = list(root.children) + list(end_ids)
            end_here = float(torch.logsumexp(lp_vec[starts], dim=0)) + lam * _log(cands[done[0]].support)
            if end_here >= scores[tok]:
                return done[0], path_lp
