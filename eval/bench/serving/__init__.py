"""Benchmarks and studies of the assembled product: the warm pipeline, the app over HTTP, unusual images."""
