"""CLIP score: agreement of images with their text, from precomputed CLIP embeddings.

Two definitions are in use; the function names say which one is computed:
- Hessel et al. (2021), CLIPScore: 2.5 * max(cos(image, text), 0), averaged over images.
- torchmetrics: max(100 * cos(image, text), 0), averaged.
- the original GenBench (``packing_utils.py``): 100 * cos(image, text), unclamped, with CLIP
  ViT-B/16 and the single prompt "a photo of a {class}" (``clip_score_paper``).
"""

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, as_int_labels, same_width


def paired_cosines(image_feats, text_feats):
    """cos_i = x_i . t_i / (||x_i|| ||t_i||) for paired rows of (N, D) arrays."""
    x = as_feature_matrix(image_feats, "image_feats")
    t = as_feature_matrix(text_feats, "text_feats")
    if x.shape != t.shape:
        raise GenBenchError(f"image_feats {x.shape} and text_feats {t.shape} must be paired rows")
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(t, axis=1)
    if np.any(norms == 0):
        raise GenBenchError("image_feats or text_feats has a row of norm zero")
    return np.sum(x * t, axis=1) / norms


def clip_score_hessel(image_feats, text_feats):
    """Hessel et al. CLIPScore: mean_i 2.5 * max(cos(x_i, t_i), 0) (range 0-2.5)."""
    return float(np.mean(2.5 * np.maximum(paired_cosines(image_feats, text_feats), 0.0)))


def clip_score_100(image_feats, text_feats):
    """torchmetrics CLIP score: mean_i max(100 * cos(x_i, t_i), 0) (range 0-100)."""
    return float(np.mean(np.maximum(100.0 * paired_cosines(image_feats, text_feats), 0.0)))


def _class_text_rows(image_feats, labels, class_text_feats):
    x = as_feature_matrix(image_feats, "image_feats")
    t = as_feature_matrix(class_text_feats, "class_text_feats")
    same_width(x, t, "image_feats", "class_text_feats")
    y = as_int_labels(labels, "labels", num_rows=x.shape[0], num_classes=t.shape[0])
    return x, t[y]


def clip_score_hessel_per_class(image_feats, labels, class_text_feats):
    """Hessel CLIPScore of each image against its class text embedding (C x D):
    mean_i 2.5 * max(cos(x_i, t_{y_i}), 0)."""
    return clip_score_hessel(*_class_text_rows(image_feats, labels, class_text_feats))


def clip_score_100_per_class(image_feats, labels, class_text_feats):
    """torchmetrics CLIP score of each image against its class text embedding (C x D):
    mean_i max(100 * cos(x_i, t_{y_i}), 0)."""
    return clip_score_100(*_class_text_rows(image_feats, labels, class_text_feats))


def clip_score_paper(image_feats, text_feats):
    """The original GenBench's CLIP score: mean_i 100 * cos(x_i, t_i), not clamped (range -100-100)."""
    return float(np.mean(100.0 * paired_cosines(image_feats, text_feats)))


def clip_score_paper_per_class(image_feats, labels, class_text_feats):
    """``clip_score_paper`` of each image against its class text embedding (C x D):
    mean_i 100 * cos(x_i, t_{y_i}); the paper's t_c embeds "a photo of a {c}" with ViT-B/16."""
    return clip_score_paper(*_class_text_rows(image_feats, labels, class_text_feats))
