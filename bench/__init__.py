"""Benchmarks of feedback_app against baselines measured in the same run (``make bench``)."""
