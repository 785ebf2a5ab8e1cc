"""Datasets: the registry, image-set indexes, real splits (prepare) and K-shot subsets (fewshot)."""
