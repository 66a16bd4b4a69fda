"""Realistic retrieved evidence for the LLM benchmarks: the Open-I reports nearest (TF-IDF cosine) to a
fixed query report, as the retriever would hand them to a drafter."""

from __future__ import annotations

QUERY_UID = "CXR3166"  # a fixed Open-I study; its 5 TF-IDF nearest reports are the grounded evidence


def evidence_reports(k: int = 5, query_uid: str = QUERY_UID) -> list[dict]:
    """The k Open-I reports nearest (TF-IDF cosine) to a fixed query report: realistic retrieved evidence."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from eclip_core.data.openi import load_openi_reports

    reps = [r for r in load_openi_reports() if r.findings and r.impression]
    texts = [f"{r.findings} {r.impression}" for r in reps]
    x = TfidfVectorizer().fit_transform(texts)
    q = next(i for i, r in enumerate(reps) if r.uid == query_uid)
    sims = (x @ x[q].T).toarray().ravel()
    sims[q] = -1.0
    top = sims.argsort()[::-1][:k]
    return [
        {
            "study_id": reps[i].uid,
            "similarity": float(sims[i]),
            "findings": reps[i].findings,
            "impression": reps[i].impression,
        }
        for i in top
    ]
