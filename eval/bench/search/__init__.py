"""Benchmarks of search: FAISS index types against a numpy top-k, and the retriever's overhead."""
