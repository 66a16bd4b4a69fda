"""Benchmarks of training: the cost of an eCLIP step against a CLIP step, and CPU memory settings."""
