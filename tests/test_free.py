"""Free mode: repetition guard, section parsing, and end to end with a tiny random LLM loaded by load_llm."""

from __future__ import annotations

import pytest
from test_llm_support import make_tiny_llama

from rag_report.drafting.free import FreeConfig, FreeDraft, free_draft, parse_sections, truncate_repetition
from rag_report.drafting.prompts import few_shot_user_message, format_report
from rag_report.errors import EmptyCorpusError
from rag_report.llm import LLMSpec, load_llm


@pytest.mark.parametrize(
    "text, kept, cut",
    [
        ("Lungs clear. Heart normal.", "Lungs clear. Heart normal.", False),
        ("Lungs clear. Heart normal. lungs clear. Heart normal.", "Lungs clear. Heart normal.", True),
        (
            "FINDINGS: No effusion. IMPRESSION: Normal. IMPRESSION: Normal.",
            "FINDINGS: No effusion. IMPRESSION: Normal.",
            True,
        ),
        ("Heart normal. The the the the the lungs.", "Heart normal.", True),
        ("A " + "b " * 70 + "c.", "", True),
        ("", "", False),
    ],
)
def test_truncate_repetition(text, kept, cut):
    assert truncate_repetition(text, max_sentence_words=60) == (kept, cut)


def test_parse_sections():
    assert parse_sections("FINDINGS: Lungs clear. IMPRESSION: Normal chest") == ("Lungs clear.", "Normal chest.", [])
    assert parse_sections("**Findings**: Lungs clear.\n**Impression**: No acute disease.")[:2] == (
        "Lungs clear.",
        "No acute disease.",
    )
    assert parse_sections("Heart normal. Conclusion: normal study")[:2] == ("Heart normal.", "normal study.")
    findings, impression, warnings = parse_sections("Lungs are clear.")
    assert (findings, impression) == ("Lungs are clear.", "")
    assert warnings == ["The generated text has no IMPRESSION section."]
    assert parse_sections("")[2][-1] == "The LLM generated no report text."


def test_prompt_lists_reports_and_clips_them():
    reports = [
        {"findings": "Lungs clear. " * 100, "impression": "Normal."},
        {"findings": "", "impression": ""},
        {"findings": "Heart enlarged.", "impression": None},
    ]
    msg = few_shot_user_message(reports, "Write it.", max_reports=5, max_chars=80)
    assert msg.count("Example report") == 2 and msg.endswith("Write it.")
    assert "Example report 3:\nFINDINGS: Heart enlarged." in msg
    assert len(format_report(reports[0], max_chars=80).splitlines()[0]) <= len("FINDINGS: ") + 80 + 4


def test_free_mode_end_to_end_with_a_tiny_local_llm(tmp_path):
    folder = make_tiny_llama(tmp_path / "tiny-free", seed=1)
    llm = load_llm(LLMSpec(path=str(folder), quantization="none", device="cpu"))
    reports = [
        {
            "study_id": "A",
            "findings": "The heart is normal in size. The lungs are clear.",
            "impression": "No acute disease.",
        },
        {"study_id": "B", "findings": "Mild cardiomegaly. No pleural effusion.", "impression": "Cardiomegaly."},
    ]
    for beams in (1, 2):
        draft = free_draft(llm, reports, FreeConfig(max_new_tokens=30, num_beams=beams))
        assert isinstance(draft, FreeDraft) and draft.llm_id == llm.id
        assert draft.raw_text  # a random model still writes tokens
        assert draft.prompt_tokens > 50
        # The parsed sections come from the (guarded) raw text and carry no headers.
        for part in (draft.findings, draft.impression):
            assert "FINDINGS:" not in part.upper() and "IMPRESSION:" not in part.upper()
        # FINDINGS and IMPRESSION are generated separately; each parsed section comes from its own raw text.
        raw_f, _, raw_i = draft.raw_text.partition("\nIMPRESSION: ")
        assert raw_f.startswith("FINDINGS: ")
        kept_f, cut_f = truncate_repetition(raw_f)
        kept_i, cut_i = truncate_repetition("IMPRESSION: " + raw_i)
        assert draft.findings == parse_sections(kept_f)[0] and draft.impression == parse_sections(kept_i)[1]
        assert draft.truncated == (cut_f or cut_i)
        assert (not draft.impression) == ("The generated text has no IMPRESSION section." in draft.warnings)
    with pytest.raises(EmptyCorpusError):
        free_draft(llm, [{"findings": "", "impression": ""}])


def test_stopping_at_a_started_loop_keeps_the_truncated_text():
    """Property: wherever loop_started fires on a prefix, truncating that prefix gives the full text's cut."""
    import random

    from rag_report.drafting.free import loop_started

    pool = [
        "Lungs clear.",
        "Heart normal.",
        "No effusion.",
        "Mild atelectasis at the left base.",
        "the the the the lungs.",
        "No pneumothorax or focal consolidation.",
    ]
    rng = random.Random(0)
    fired = 0
    for _ in range(300):
        words = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 7))).split()
        full = " ".join(words)
        for n in range(1, len(words) + 1):
            prefix = " ".join(words[:n])
            if loop_started(prefix):
                fired += 1
                assert truncate_repetition(prefix) == truncate_repetition(full), (prefix, full)
                break
    assert fired > 50  # the property was exercised, not vacuous


def test_generate_stops_when_asked(tmp_path):
    folder = make_tiny_llama(tmp_path / "tiny-stop", seed=2)
    llm = load_llm(LLMSpec(path=str(folder), quantization="none", device="cpu"))
    prompt = llm.chat_prompt("Write a report.", "You are a radiologist.")
    full = llm.generate(prompt, max_new_tokens=24)
    calls = []

    def after_five(text):
        calls.append(text)
        return len(calls) >= 5

    short = llm.generate(prompt, max_new_tokens=24, stop_when=after_five)
    assert len(calls) == 5 and len(llm.encode(short)) < len(llm.encode(full))
    assert full.startswith(short)  # greedy: the same tokens up to the stop
