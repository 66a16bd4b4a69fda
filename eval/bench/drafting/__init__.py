"""Benchmarks and studies of drafting: the LLM per precision, free mode's loop stop, grounded settings."""
