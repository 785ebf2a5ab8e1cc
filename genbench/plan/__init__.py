"""The plan: every artifact of the benchmark, its recipe, key and path, derived from the config."""
