"""Benchmarks and studies of drafting: the LLM per precision (evidence: the nearest Open-I reports), free
mode's loop stop, grounded settings."""
