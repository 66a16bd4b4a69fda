"""Benchmarks of getting studies in: image loading, gaze heatmaps, sectioning, the phantom build, the labeler."""
