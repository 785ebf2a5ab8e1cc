"""Model loading: tiny models built in code (tiny.py) and text-to-image pipelines (generators.py)."""
