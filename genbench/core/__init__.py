"""Artifacts, config, errors, fingerprints and housekeeping: what every stage relies on."""
