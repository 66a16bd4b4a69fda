"""Benchmarks and studies; each writes a Markdown page with the command that produced it."""
