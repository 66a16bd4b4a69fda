"""Draft hygiene: which evidence sentences may enter a draft, and in what form (shared by every mode).

A retrieved report belongs to another patient and another day. A sentence from it is

* dropped when it carries a de-identification token ("XXXX", "___": the word behind it is unknown);
* dropped when it carries identifying or dated detail: a date, a time, an age, a title with a name;
* rewritten to its comparison-free form when it refers to a prior study the user never gave ("Stable
  cardiomegaly." -> "Cardiomegaly."; "..., unchanged from the prior exam." -> "...."), and dropped
  when no safe rewrite removes every comparison word;
* dropped when it is not a complete sentence (a fragment, glued clauses, a dangling conjunction);
* dropped when it is about a body part a chest X-ray does not show ("Left knee.": corpora hold combined
  studies);
* freed of a leading connective that refers to a sentence it no longer follows ("However, no effusion."
  -> "No effusion.");
* freed of list numbering ("1. Cardiomegaly." -> "Cardiomegaly."; "... pleural effusions 2." -> "... pleural
  effusions.");
* dropped when it names a view the user did not give (one frontal X-ray is drafted: "lateral view",
  "on the lateral", "frontal and lateral radiographs", the retrosternal space);
* dropped when it is cut: it holds a stop followed by a lower-case word ("No cavitary lesion to suggest.
  active tuberculosis.") or ends on an unfinished phrase ("... opacity to suggest.").

>>> [clean_sentence(s) for s in ["Stable cardiomegaly.", "No XXXX consolidation.",
...                                "Heart size normal, unchanged from prior.", "On 12 March 2020 a 78-year-old woman."]]
['Cardiomegaly.', None, 'Heart size normal.', None]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from eclip_core.text import DEID_TOKEN

#: Words and phrases that refer to an earlier study (word-bounded, case-insensitive). "Prior" and "previous"
#: count only where they name a study ("compared to prior", "prior exam"): "prior granulomatous disease" is
#: a finding, not a comparison.
_STUDY = r"(?:chest\s+)?(?:exams?|examinations?|stud(?:y|ies)|films?|radiographs?|x-?rays?|ct|images?|comparisons?)"
COMPARISON_PATTERNS = (
    r"(?:prior|previous|preceding|earlier|recent|last|most recent)\s+" + _STUDY,
    r"(?:to|from|with|on|since|than|over)\s+(?:the\s+)?(?:prior|previous)",
    r"(?:prior|previous)\s*\.?$",
    r"compar(?:e|ed|ing|ison|isons)",
    r"interval(?:ly)?",
    r"unchanged",
    r"stable",
    r"stability",
    r"again",
    r"no longer",
    r"previously",
    r"interim",
    r"continued",
    r"(?:has|have|had)\s+(?:\w+ly\s+)?(?:increased|decreased|enlarged|grown|cleared|developed|diminished|moved)",
    r"(?:increased|decreased|increase|decrease)\s+in\s+(?:size|extent|number|conspicuity|prominence|volume)",
    r"increasing|decreasing|clearing|cleared",
    r"(?:increased|decreased)\s+(?:from|since|compared)",
    r"redemonstrat\w*",
    r"re-demonstrat\w*",
    r"persist(?:s|ent|ently|ing)?",
    r"(?:no|without) (?:significant |appreciable |other )?change",
    r"changed",
    r"since",
    r"improv\w*",
    r"worsen\w*",
    r"resolv\w*",
    r"resolution",
    r"progress\w*",
    r"remain(?:s|ed|ing)?",
    r"new(?:ly)?",
    r"similar",
    r"outside " + _STUDY,  # another institution's study the user never gave
    r"reformat\w*",  # CT reconstructions: not in a radiograph
)
_COMPARISON = re.compile(r"\b(?:" + "|".join(COMPARISON_PATTERNS) + r")\b", re.IGNORECASE)
_TRAILING = re.compile(
    r"(?:,\s*|\s+)(?:(?:which|that) (?:is|are) )?(?:(?:grossly |overall |essentially |relatively )?"
    r"(?:unchanged|stable|not significantly changed|similar|persistent|increased|decreased|worse)|"
    r"(?:when )?compared (?:to|with)|"
    r"as (?:compared|seen) (?:to|with|on)|since|from)"
    r"(?:\s+(?:to|with|from|since|on|in))?(?:\s+(?:the|a))?(?:\s+(?:prior|previous|recent|earlier|most recent|last))?"
    r"(?:\s+" + _STUDY + r")?(?:\s+(?:dated|from|of)\s+\S+)?\s*\.$",
    re.IGNORECASE,
)
#: Comparison adjectives dropped before a noun phrase ("Stable cardiomegaly" -> "Cardiomegaly").
_ADJECTIVE = re.compile(
    r"\b(?:(?:and|or)\s+)?(?:grossly\s+|overall\s+)?(?:stable|unchanged|persistent|persisting|"
    r"again noted|again seen|redemonstrated|re-demonstrated)\s+(?:appearance\s+of\s+(?:the\s+)?)?",
    re.IGNORECASE,
)
#: "again" as an adverb ("The heart is again mildly enlarged." -> "The heart is mildly enlarged.").
_AGAIN = re.compile(r"\s*\b(?:once\s+)?again\b(?!\s+(?:noted|seen|demonstrated|identified|visualized)\b),?", re.I)
#: A view the user did not give: drafting reads one frontal X-ray.
_OTHER_VIEW = re.compile(
    r"\blateral\s+(?:views?|projections?|radiographs?|films?|images?|exams?|examinations?|stud(?:y|ies))\b"
    r"|\bon\s+(?:the\s+)?lateral\b(?!\s+(?:aspect|portion|margin|wall|chest|left|right|costophrenic|side|lungs?|ribs?))|\b(?:frontal|pa|ap)\s+and\s+lateral\b|\blateral\s+only\b"
    r"|\b(?:two|2|both)\s+views\b|\bretrosternal\b|\boblique\s+views?\b",
    re.IGNORECASE,
)
_LINKING = {
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "remain",
    "remains",
    "appear",
    "appears",
    "seem",
    "seems",
    "looks",
    "look",
    "also",
}
_NO_NEW = re.compile(r"\b(no|without)\s+(?:new|interval|newly)\s+", re.IGNORECASE)
_DEID = re.compile(r"\b" + DEID_TOKEN + r"\b|_{2,}|\b[Xx]{3,}\b")
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_IDENTIFYING = re.compile(
    r"\b\d{1,4}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{2,4}\b"  # 12/03/2020, 2020-03-12
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTHS + r"\b"  # 12th March, 12 of march
    r"|\b" + _MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?\b"  # March 12
    r"|\b(?:19|20)\d{2}\b"  # a year
    r"|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s*(?:a\.?m\.?|p\.?m\.?)(?=\W|$)"  # times
    r"|\b\d{1,3}[- ](?:year|yr|month|week|day)s?[- ]old\b|\baged?\s+\d{1,3}\b|\b\d{1,3}\s*(?:yo|y/o|yrs?)\b"
    r"|\b(?:dr|mr|mrs|ms|miss|prof)\.?\s+[A-Z][a-z]+"  # Dr. Smith
    r"|\b(?:patient|pt)\s+name\b|\bname\s*:",
    re.IGNORECASE,
)
_DANGLING = re.compile(
    r"\b(?:and|or|of|with|the|a|an|to|for|in|on|at|by|as|but|nor|versus|vs|is|are|was|were|"
    r"be|been|has|have|had|appear|appears|remain|remains|seem|seems|also|than)\s*\.?$",
    re.IGNORECASE,
)
#: One-word "sentences" that are headings or list debris, not statements.
_HEADINGS = {
    "chest",
    "abdomen",
    "pelvis",
    "findings",
    "impression",
    "comparison",
    "indication",
    "history",
    "technique",
    "views",
    "view",
    "pa",
    "lateral",
    "frontal",
    "dr",
    "none",
    "however",
}
_GLUED = re.compile(
    r"\b(?:and|or|of|with|the|to|a|an|in|is|are|no|but)\s+(?:The|There|No|Heart|Lungs|Normal|"
    r"Mild|Small|Large|Left|Right|Interval|Stable|Cardiomegaly|Degenerative)\b"
)
_WORD = re.compile(r"[A-Za-z]{2,}")
_REPEATED_STOPS = re.compile(r"\s*\.(?:\s*\.)+$")
_OTHER_BODY_PART = re.compile(
    r"\b(?:knees?|ankles?|foot|feet|toes?|hips?|wrists?|hands?|fingers?|elbows?|femurs?|femoral|tibiae?|tibial|"
    r"fibulae?|pelvis|pelvic|skull|cranial|sinus(?:es)?|mandible|orbits?|abdomen|abdominal|iliac|aorto-?iliac|"
    r"inguinal|forearms?|ulnae?|ulnar|humeral\s+(?:shaft|rod|nail|plate|screws?)|lower\s+extremit(?:y|ies))\b",
    re.IGNORECASE,
)
_LEADING_CONNECTIVE = re.compile(r"^(?:however|also|additionally|in addition|furthermore|moreover)\s*,?\s+", re.I)
#: List numbering: a leading "1." / "2)" or a trailing "... effusions 2." left by sentence splitting.
_LEADING_NUMBER = re.compile(r"^\(?\d{1,2}\s*[.)]\s*(?=[A-Za-z])")
_TRAILING_NUMBER = re.compile(r"(?<=[A-Za-z,])\s+\d{1,2}\s*[.)]?\s*\.?$")
_NUMBERED_ANATOMY = {"t", "l", "c", "rib", "ribs", "level", "levels", "segment", "zone", "grade", "stage", "type"}
#: A sentence cut in two: a stop followed by a lower-case word, or an unfinished ending ("... to suggest.").
_INNER_CUT = re.compile(r"[.!?]\s+[a-z]")
_UNFINISHED = re.compile(
    r"\b(?:to\s+(?:suggest|represent|indicate|be)|suggest(?:ing|ive\s+of)?|consistent|"
    r"compatible|concerning|may|might|could|which|including|such\s+as|representing|due|from|into|within|"
    r"without|along|between|than|per|via|its|their|his|her|no|not)\s*\.?$",
    re.IGNORECASE,
)
_CHANGE_WORDS = {"increased", "decreased", "worse", "better", "larger", "smaller", "enlarged"}


def has_deid_token(sentence: str) -> bool:
    return bool(_DEID.search(sentence))


def has_identifying_detail(sentence: str) -> bool:
    """A date, time, age or titled name (never copied from another patient's report)."""
    return bool(_IDENTIFYING.search(sentence))


def has_comparison(sentence: str) -> bool:
    """Refers to an earlier study ("unchanged", "compared to prior", "interval" ...)."""
    return bool(_COMPARISON.search(sentence))


def is_complete_sentence(sentence: str) -> bool:
    """Starts with a capital letter or digit, ends with a period, has two or more words, no dangling
    connective at the end, no clauses glued without a stop ("... effusion or The heart ..."), balanced
    parentheses."""
    s = sentence.strip()
    if not s or not (s[0].isupper() or s[0].isdigit()) or not s.endswith("."):
        return False
    words = _WORD.findall(s)
    if not words or s.count("(") != s.count(")"):
        return False
    if len(words) == 1 and (len(words[0]) < 4 or words[0].lower() in _HEADINGS):
        return False  # "Cardiomegaly." is a statement; "Chest." or "1." is not
    return not (_DANGLING.search(s[:-1].rstrip()) or _GLUED.search(s))


def has_other_view(sentence: str) -> bool:
    """Names a view the user did not give (drafting reads one frontal X-ray): "lateral view", "on the
    lateral", "frontal and lateral", the retrosternal space (seen on a lateral)."""
    return bool(_OTHER_VIEW.search(sentence))


def is_cut(sentence: str) -> bool:
    """A sentence cut in two or left unfinished: a stop followed by a lower-case word inside it, or an
    ending that needs more ("... to suggest.", "... consistent with.")."""
    s = sentence.strip()
    return bool(_INNER_CUT.search(s) or _UNFINISHED.search(s[:-1].rstrip() if s.endswith(".") else s))


def without_numbering(sentence: str) -> str:
    """The sentence without list numbering ("1. Cardiomegaly." -> "Cardiomegaly."; "... effusions 2." ->
    "... effusions."); a number that belongs to anatomy ("... of T 12.", "rib 7.") stays."""
    s = _LEADING_NUMBER.sub("", sentence.strip())
    m = _TRAILING_NUMBER.search(s)
    if m:
        before = s[: m.start()].split()
        if before and before[-1].lower().strip(",") not in _NUMBERED_ANATOMY:
            s = s[: m.start()].rstrip(",") + "."
    return s


def _without_comparison(sentence: str) -> str:
    """Safe rewrites only: a trailing comparison clause, "no new X" -> "no X", "again" as an adverb, and a
    comparison adjective before a noun phrase (not after a linking verb: "The heart is stable." has no
    comparison-free form)."""
    s = _TRAILING.sub(".", sentence.strip())
    s = _AGAIN.sub("", s)
    s = _NO_NEW.sub(lambda m: m.group(1) + " ", s)

    def drop_adjective(m: re.Match) -> str:
        before = s[: m.start()].split()
        after = s[m.end() :]
        linked = bool(before) and before[-1].lower().strip(",") in _LINKING
        there_is = [w.lower() for w in before[-2:]] in (["there", "is"], ["there", "are"])
        if (linked and not there_is) or not after[:1].isalpha():
            return m.group(0)
        return ""

    s = _ADJECTIVE.sub(drop_adjective, s)
    s = _REPEATED_STOPS.sub(".", " ".join(s.split()).replace(" ,", ",").replace(" .", "."))
    return s[:1].upper() + s[1:] if s else s


@lru_cache(maxsize=1 << 16)
def clean_sentence(sentence: str) -> str | None:
    """The sentence as it may enter a draft, or None when it may not (see the module docstring). Cached:
    drafts draw their sentences from one corpus, so the same sentences come back draft after draft."""
    s = _REPEATED_STOPS.sub(".", " ".join(str(sentence).split()))
    if not s:
        return None
    s = _LEADING_CONNECTIVE.sub("", without_numbering(s))
    if not s:
        return None
    s = s[0].upper() + s[1:]
    if not s.endswith((".", "!", "?")):
        s += "."
    if has_deid_token(s) or has_identifying_detail(s) or _OTHER_BODY_PART.search(s) or has_other_view(s):
        return None
    if has_comparison(s):
        s = _without_comparison(s)
        if has_comparison(s) or s.lower().rstrip(".") in _CHANGE_WORDS:
            return None
    return s if is_complete_sentence(s) and not is_cut(s) else None


def why_not(sentence: str) -> str:
    """Why :func:`clean_sentence` refuses ``sentence`` (a short reason), or "" when it does not.

    >>> why_not("Limited evaluation of the aorto iliac stent."), why_not("Heart size is normal.")
    ('another body region', '')
    """
    s = _LEADING_CONNECTIVE.sub("", without_numbering(" ".join(str(sentence).split())))
    if clean_sentence(sentence) is not None:
        return ""
    for reason, bad in (
        ("de-identification token", has_deid_token),
        ("date, age or name", has_identifying_detail),
        ("another body region", lambda t: bool(_OTHER_BODY_PART.search(t))),
        ("a view not given", has_other_view),
        ("comparison with a prior study", has_comparison),
        ("cut sentence", is_cut),
    ):
        if bad(s):
            return reason
    return "incomplete sentence"


def clean_sentences(sentences: Iterable[str]) -> list[str]:
    """The sentences that may enter a draft, cleaned, in order (duplicates after cleaning kept once)."""
    out, seen = [], set()
    for sentence in sentences:
        cleaned = clean_sentence(sentence)
        if cleaned is not None and cleaned.lower() not in seen:
            seen.add(cleaned.lower())
            out.append(cleaned)
    return out
