"""Texts every output built on the embedded default carries (the draft's JSON, the app's banner, the SR)."""

SIMULATED_NOTICE = (
    "Default bundle: real Open-I report text with SIMULATED (phantom) radiographs. "
    "Not for clinical use; numbers on it do not transfer to real images."
)
