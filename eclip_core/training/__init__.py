"""Training internals: data plan and batches (data), optimiser and schedule (optim), checkpoints,
and a synthetic blob dataset for tests and benchmarks (synthetic). The entry point is eclip_core.train."""
