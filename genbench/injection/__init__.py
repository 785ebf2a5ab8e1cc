"""Injection: a dataset's own images brought into generation. Textual inversion learns one
token per class from reference images (``references``: which images, from the original train
split or the top retrieval hits; ``textual_inversion``: the training and the learned
embeddings)."""
