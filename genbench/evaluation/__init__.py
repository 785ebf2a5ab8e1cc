"""Evaluation: encoders, features, ELEVATER packs, the linear probe and the metrics."""
