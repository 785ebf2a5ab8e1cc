"""The ELEVATER linear probe on cached features (the ELEVATER protocol, described below).

Head: BatchNorm1d(affine=False) -> Linear(D, C), bias 0, logit scale 1, weights initialised
from the zero-shot text classifier ("language-init") or seeded random.  Loss: cross-entropy
(BCE-with-logits for multi-label).  SGD, momentum 0.9, constant lr, batch 64, L2 weight decay
(SGD ``weight_decay`` on weight and bias).  Hyper-parameters: lr over logspace(-6, -1, 6) and,
per lr, ELEVATER's coarse-to-fine search over the 97 weight decays logspace(-6, 6, 97).

With a frozen encoder and no augmentation, features are computed once.  Every run shares the
same seeded batch order, and the BatchNorm statistics depend on neither lr nor wd, so all runs
of one search stage are trained at once as a stack of M heads (weights M x D x C).
``torch.set_num_threads`` is the caller's job.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.classification import METRIC_NAMES, dataset_metric

LEARNING_RATES = tuple(np.logspace(-6, -1, 6).tolist())
WEIGHT_DECAYS = tuple(np.logspace(-6, 6, 97).tolist())
COARSE_WD_INDICES = (0, 16, 32, 48, 64, 80, 96)  # the points of logspace(-6, 6, 7) in WEIGHT_DECAYS
WD_STEPS = (8, 4, 2, 1)
MOMENTUM = 0.9
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
VAL_FRACTION = 0.2
REPORT_MODES = ("honest", "elevater")


# --------------------------------------------------------------------------- weight-decay search


class WeightDecaySearch:
    """ELEVATER's coarse-to-fine search over weight-decay indices, as a state machine.

    Stage 0 scores ``coarse``; stage s (step in ``steps``) scores ``max(peak - step, 0)`` then
    ``min(peak + step, n - 1)``, skipping any that equals the peak, where ``peak`` is the best
    index at the start of the stage.  Scores are compared in visiting order and the peak moves
    only on a strictly greater score (ties keep the earlier index).
    This is ELEVATER's default search (``TRAIN.WD_SEARCH_LEFT = False``: each point is trained
    with its own weight decay; the initial release's ``WD_SEARCH_LEFT = True`` trained both points
    of a stage with the left-hand one). One difference, a bug there: ELEVATER starts from peak
    score 0, so all-zero scores return index -1 (the last weight decay, 1e6); here the first
    visited index wins.
    """

    def __init__(
        self,
        num_points: int = len(WEIGHT_DECAYS),
        coarse: Sequence[int] = COARSE_WD_INDICES,
        steps: Sequence[int] = WD_STEPS,
    ):
        if any(not 0 <= i < num_points for i in coarse) or not coarse:
            raise GenBenchError(f"WeightDecaySearch: coarse indices {list(coarse)} must lie in [0, {num_points})")
        self.num_points = num_points
        self._stages: list = [list(coarse)] + list(steps)
        self.best_index: int | None = None
        self.best_score = -math.inf
        self.visited: list[int] = []
        self.scores: list[float] = []

    def next_indices(self) -> list[int]:
        """Indices to score in the next stage ([] when the search is over)."""
        while self._stages:
            stage = self._stages[0]
            if isinstance(stage, list):
                return list(stage)
            peak = self.best_index
            around = [max(peak - stage, 0), min(peak + stage, self.num_points - 1)]
            candidates = [i for i in dict.fromkeys(around) if i != peak]
            if candidates:
                return candidates
            self._stages.pop(0)
        return []

    def report(self, indices: Sequence[int], scores: Sequence[float]) -> None:
        """Record the scores of the indices ``next_indices`` returned, in that order."""
        if list(indices) != self.next_indices():
            raise GenBenchError(
                f"WeightDecaySearch.report: expected scores for {self.next_indices()}, got {list(indices)}"
            )
        for index, score in zip(indices, scores):
            self.visited.append(int(index))
            self.scores.append(float(score))
            if score > self.best_score:
                self.best_index, self.best_score = int(index), float(score)
        self._stages.pop(0)


def weight_decay_search(
    score_fn: Callable[[int], float],
    num_points: int = len(WEIGHT_DECAYS),
    coarse: Sequence[int] = COARSE_WD_INDICES,
    steps: Sequence[int] = WD_STEPS,
):
    """Run ELEVATER's weight-decay search with ``score_fn(index) -> score``.

    Returns ``(best_index, visited)``: the index with the highest score (earliest on ties) and
    every index scored, in visiting order (see ``WeightDecaySearch``).
    """
    search = WeightDecaySearch(num_points, coarse, steps)
    while indices := search.next_indices():
        search.report(indices, [score_fn(i) for i in indices])
    return search.best_index, search.visited


# --------------------------------------------------------------------------- data handling


def check_shots(labels, k: int, class_names: Sequence[str]) -> list[int]:
    """Check that every class has at least ``k`` images; return the per-class counts.

    ``labels``: int class ids (N,) or a multi-hot matrix (N, C).  Raises GenBenchError naming
    every class with fewer than ``k`` images and its count.
    """
    counts = class_counts(labels, len(class_names))
    short = [f"'{class_names[c]}' (id {c}) has {n}" for c, n in enumerate(counts) if n < k]
    if short:
        raise GenBenchError(
            f"{k} shots per class asked, but class {', '.join(short[:10])}"
            + (f" and {len(short) - 10} more classes are short" if len(short) > 10 else "")
        )
    return counts


def class_counts(labels, num_classes: int) -> list[int]:
    """Images per class: bincount of int labels, or column sums of a multi-hot matrix."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[1] != num_classes:
            raise GenBenchError(f"multi-hot labels have {labels.shape[1]} columns, expected {num_classes} classes")
        return labels.astype(bool).sum(axis=0).astype(int).tolist()
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise GenBenchError(
            f"labels must be class ids in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]"
        )
    return np.bincount(labels.astype(np.int64), minlength=num_classes).tolist()


def validation_split(labels, seed: int, fraction: float = VAL_FRACTION):
    """Class-balanced split: shuffle with ``np.random.default_rng(seed)``; the first
    ``ceil(fraction * n_c)`` images of each class c (in shuffled order) are validation.

    Multi-label rows are grouped by their lowest positive class (rows with none form one group).
    Returns ``(train_indices, val_indices)``, each sorted ascending.
    """
    groups = _stratum(np.asarray(labels))
    order = np.random.default_rng(seed).permutation(len(groups))
    val = []
    for group in np.unique(groups):
        members = order[groups[order] == group]
        val.extend(members[: math.ceil(fraction * len(members))].tolist())
    val = np.sort(np.asarray(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(groups)), val)
    return train, val


def validation_split_in_order(labels, fraction: float = VAL_FRACTION):
    """ELEVATER's split (``feature.py: get_dataloader``), in dataset order, no shuffle.

    Single-label: the first ``ceil(fraction * n_c)`` images of each class c, in the given order.
    Multi-label (N, C) 0/1 rows: the need of class c is ``ceil(fraction * n_c)``; repeatedly take
    the first row holding the lowest-numbered class still in need, subtract that row from every
    need, and remove it from the pool. Returns ``(train_indices, val_indices)``, each sorted.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        val = [
            np.nonzero(labels == c)[0][: math.ceil(fraction * n)]
            for c, n in zip(*np.unique(labels, return_counts=True))
        ]
        val = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    else:
        remaining = labels.astype(np.int64).copy()
        need = np.ceil(remaining.sum(axis=0) * fraction)
        chosen = []
        while (targets := np.nonzero(need > 0)[0]).size:
            row = int(np.nonzero(remaining[:, targets[0]] > 0)[0][0])
            chosen.append(row)
            need -= remaining[row]
            remaining[row] = 0
        val = np.sort(np.asarray(chosen, dtype=np.int64))
    val = val.astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), val), val


def _stratum(labels: np.ndarray) -> np.ndarray:
    if labels.ndim == 1:
        return labels.astype(np.int64)
    positive = labels.astype(bool)
    return np.where(positive.any(axis=1), positive.argmax(axis=1), -1)


def epoch_batches(num_samples: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches: ``torch.randperm(num_samples, generator)`` cut into ``batch_size``
    chunks; a last batch of one sample is dropped (BatchNorm cannot train on it; ELEVATER skips it)."""
    order = torch.randperm(num_samples, generator=generator)
    return [b for b in torch.split(order, batch_size) if len(b) > 1]


def initial_weight(text_classifier, num_classes: int, dim: int, seed: int) -> torch.Tensor:
    """Initial Linear weight (C x D): the zero-shot text classifier ("language-init"), or, when
    it is None, uniform(-1/sqrt(D), 1/sqrt(D)) from ``torch.Generator().manual_seed(seed)``."""
    if text_classifier is None:
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(dim)
        return (torch.rand(num_classes, dim, generator=generator) * 2 - 1) * bound
    weight = torch.as_tensor(np.asarray(text_classifier, dtype=np.float32))
    if tuple(weight.shape) != (num_classes, dim):
        raise GenBenchError(
            f"text_classifier has shape {tuple(weight.shape)}, expected ({num_classes}, {dim}) = (classes, feature dim)"
        )
    return weight.clone()


# --------------------------------------------------------------------------- batched training


class _BatchNormStats:
    """BatchNorm1d(affine=False): batch statistics in training, running statistics in eval."""

    def __init__(self, dim: int):
        self.running_mean = torch.zeros(dim)
        self.running_var = torch.ones(dim)

    def train_normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = x.mean(0), x.var(0, unbiased=False)
        n = x.shape[0]
        self.running_mean = (1 - BN_MOMENTUM) * self.running_mean + BN_MOMENTUM * mean
        self.running_var = (1 - BN_MOMENTUM) * self.running_var + BN_MOMENTUM * var * (n / (n - 1))
        return (x - mean) / torch.sqrt(var + BN_EPS)

    def eval_normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.running_mean) / torch.sqrt(self.running_var + BN_EPS)


def _logit_gradient(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """d(mean loss)/d(logits) for each of the M heads: (softmax - onehot) / B for cross-entropy,
    (sigmoid - y) / (B * C) for BCE-with-logits (mean over all entries)."""
    batch, classes = logits.shape[1], logits.shape[2]
    if multilabel:
        return (torch.sigmoid(logits) - targets) / (batch * classes)
    grad = torch.softmax(logits, dim=2)
    grad[:, torch.arange(batch), targets] -= 1.0
    return grad / batch


def _scores(logits: torch.Tensor, multilabel: bool, softmax_scores: bool) -> np.ndarray:
    """Class scores: softmax over classes, or per-class sigmoid for multi-label heads unless
    ``softmax_scores`` (ELEVATER scores multi-label heads with a softmax too)."""
    probabilities = torch.sigmoid(logits) if multilabel and not softmax_scores else torch.softmax(logits, dim=1)
    return probabilities.numpy()


def _metric_or_zero(
    metric: str, labels: np.ndarray, logits: torch.Tensor, multilabel: bool, softmax_scores: bool = False
) -> float:
    """The metric in percent; 0 for a diverged head (non-finite logits), as ELEVATER scores failed runs."""
    if not torch.isfinite(logits).all():
        return 0.0
    return float(dataset_metric(metric, labels, _scores(logits, multilabel, softmax_scores)))


def train_heads(
    train_x,
    train_y,
    eval_x,
    eval_y,
    *,
    lrs: Sequence[float],
    wds: Sequence[float],
    init_weight,
    metric: str,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    multilabel: bool = False,
    softmax_scores: bool = False,
):
    """Train M = len(lrs) heads at once (head m: lr ``lrs[m]``, weight decay ``wds[m]``).

    All heads see the same batches (``epoch_batches`` with ``torch.Generator().manual_seed(seed)``)
    and the same BatchNorm statistics; each does SGD on its own loss:
    g = dL/dp + wd * p; buf = 0.9 * buf + g; p = p - lr * buf (torch.optim.SGD, dampening 0).
    After every epoch each head is scored on ``(eval_x, eval_y)`` with ``metric`` (multi-label
    scores: sigmoid, or softmax over classes with ``softmax_scores``).
    Returns ``(weights (M, C, D), biases (M, C), scores (M, epochs) as numpy)``.
    """
    x, x_eval = _as_float_tensor(train_x, "train features"), _as_float_tensor(eval_x, "eval features")
    targets = torch.as_tensor(np.asarray(train_y), dtype=torch.float32 if multilabel else torch.int64)
    if len(lrs) != len(wds):
        raise GenBenchError(f"train_heads: {len(lrs)} learning rates but {len(wds)} weight decays")
    if x.shape[0] < 2:
        raise GenBenchError(f"train_heads: need at least 2 training images, got {x.shape[0]}")
    lr = torch.tensor(lrs, dtype=torch.float32)[:, None, None]
    wd = torch.tensor(wds, dtype=torch.float32)[:, None, None]
    num_heads = len(lrs)
    init = torch.as_tensor(init_weight, dtype=torch.float32)
    weight = init.T.unsqueeze(0).repeat(num_heads, 1, 1).contiguous()  # (M, D, C)
    bias = torch.zeros(num_heads, 1, weight.shape[2])
    momentum_w, momentum_b = torch.zeros_like(weight), torch.zeros_like(bias)
    bn = _BatchNormStats(x.shape[1])
    generator = torch.Generator().manual_seed(seed)
    eval_labels = np.asarray(eval_y)
    scores = np.zeros((num_heads, epochs))
    for epoch in range(epochs):
        for batch in epoch_batches(x.shape[0], batch_size, generator):
            features = bn.train_normalise(x[batch])
            logits = torch.matmul(features, weight) + bias  # (M, B, C)
            grad_logits = _logit_gradient(logits, targets[batch], multilabel)
            grad_w = torch.matmul(features.T, grad_logits) + wd * weight
            grad_b = grad_logits.sum(1, keepdim=True) + wd * bias
            momentum_w = MOMENTUM * momentum_w + grad_w
            momentum_b = MOMENTUM * momentum_b + grad_b
            weight = weight - lr * momentum_w
            bias = bias - lr * momentum_b
        normalised_eval = bn.eval_normalise(x_eval)
        for m in range(num_heads):
            logits = torch.addmm(bias[m], normalised_eval, weight[m])
            scores[m, epoch] = _metric_or_zero(metric, eval_labels, logits, multilabel, softmax_scores)
    return weight.transpose(1, 2).numpy(), bias[:, 0].numpy(), scores


def _as_float_tensor(features, what: str) -> torch.Tensor:
    array = np.asarray(features, dtype=np.float32)
    if array.ndim != 2:
        raise GenBenchError(f"{what} must be a 2-D (N, D) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise GenBenchError(f"{what} contain NaN or inf")
    return torch.from_numpy(np.ascontiguousarray(array))


# --------------------------------------------------------------------------- the protocol


def is_unstable(lr: float, wd: float) -> bool:
    """True when lr * wd > 2 (1 + momentum): heavy-ball SGD on (wd / 2) ||w||^2 diverges."""
    return lr * wd > 2 * (1 + MOMENTUM)


SCORE_EPOCHS = ("best", "late_mean")


def summarise_epochs(scores: np.ndarray, score_epoch: str) -> np.ndarray:
    """One search score per run from ``scores`` (runs, epochs): the maximum over epochs
    (``"best"``) or the mean over the last ceil(epochs / 2) (``"late_mean"``). Returns (runs,)."""
    if score_epoch not in SCORE_EPOCHS:
        raise GenBenchError(f"search: unknown score_epoch {score_epoch!r}; valid: {', '.join(SCORE_EPOCHS)}")
    if score_epoch == "best":
        return scores.max(axis=1)
    late = -math.ceil(scores.shape[1] / 2)
    return scores[:, late:].mean(axis=1)


def search_hyperparameters(
    train_x,
    train_y,
    val_x,
    val_y,
    *,
    init_weight,
    metric: str,
    lrs: Sequence[float],
    epochs: int,
    batch_size: int,
    seed: int,
    multilabel: bool,
    softmax_scores: bool = False,
    wd_steps: Sequence[int] = WD_STEPS,
    score_epoch: str = "best",
    log=None,
):
    """ELEVATER's search: for each lr a ``WeightDecaySearch``; a run's score is its validation
    metric summarised as ``score_epoch`` names: ``"best"`` (ELEVATER: the maximum over
    ``epochs``) or ``"late_mean"`` (the mean over the last ceil(epochs / 2) epochs).  The honest
    final run reports its last epoch, so its search must not reward a lucky epoch: at a large
    lr * wd, SGD with momentum swings the head's weights through zero to their negation every few
    steps (the wd-only iteration z^2 - (1 + m - lr wd) z + m = 0 has complex roots), the metric
    swings between its best and below chance, and the best epoch, or any single epoch, can land
    on a peak that the final run's last epoch misses.
    All lrs advance stage by stage and each stage's runs train as one stack.
    Best (lr, wd): highest score, earliest lr then earliest visit on ties.
    A run with lr * wd > 2 (1 + momentum) is scored -inf (recorded with ``"unstable": True``):
    SGD with momentum on the weight-decay term alone diverges there, so its final 50-epoch run
    would blow up even when its first search epochs looked good (a departure from ELEVATER,
    which can pick such a run and then report a diverged head).
    Returns ``(best_lr, best_wd, records)``, records = one dict per run in visiting order.
    """
    searches = {lr: WeightDecaySearch(steps=wd_steps) for lr in lrs}
    records = []
    while pending := [(lr, i) for lr, s in searches.items() for i in s.next_indices()]:
        _, _, scores = train_heads(
            train_x,
            train_y,
            val_x,
            val_y,
            lrs=[lr for lr, _ in pending],
            wds=[WEIGHT_DECAYS[i] for _, i in pending],
            init_weight=init_weight,
            metric=metric,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            multilabel=multilabel,
            softmax_scores=softmax_scores,
        )
        best_per_run = summarise_epochs(scores, score_epoch)
        unstable = [is_unstable(lr, WEIGHT_DECAYS[i]) for lr, i in pending]
        best_per_run[unstable] = -np.inf
        for lr, search in searches.items():
            chosen = [(i, best_per_run[j]) for j, (run_lr, i) in enumerate(pending) if run_lr == lr]
            if chosen:
                search.report([i for i, _ in chosen], [s for _, s in chosen])
        records += [
            {
                "lr": lr,
                "wd_index": i,
                "wd": WEIGHT_DECAYS[i],
                "unstable": unstable[j],
                "score": None if unstable[j] else float(best_per_run[j]),
            }
            for j, (lr, i) in enumerate(pending)
        ]
        if log:
            log(
                f"linear probe search: trained {len(pending)} heads; best so far "
                + ", ".join(f"lr={lr:g}: {s.best_score:.2f}" for lr, s in searches.items())
            )
    best_lr = max(lrs, key=lambda lr: (searches[lr].best_score, -list(lrs).index(lr)))
    return best_lr, WEIGHT_DECAYS[searches[best_lr].best_index], records


def run_linear_probe(
    train_feats,
    train_labels,
    test_feats,
    test_labels,
    *,
    metric: str,
    text_classifier=None,
    mode: str = "honest",
    seed: int = 0,
    lrs=None,
    search: bool = True,
    epochs_search: int = 10,
    epochs_final: int = 50,
    batch_size: int = 64,
    log=None,
    lr: float | None = None,
    wd: float | None = None,
    num_classes: int | None = None,
    wd_steps: Sequence[int] = WD_STEPS,
) -> dict:
    """The ELEVATER linear probe on cached features, under one of two labelled protocols.

    ``mode="honest"`` (the default): the validation images are ``validation_split(train_labels,
    seed)`` (class-balanced, shuffled with the seed), multi-label heads are scored with a sigmoid,
    each search run is scored by its mean validation metric over its last half of epochs, and the
    test metric after the last final epoch is reported.
    ``mode="elevater"`` (ELEVATER's code, for comparison with published numbers): validation is
    ``validation_split_in_order`` (dataset order, no shuffle: in a combined set the real images
    come first), multi-label heads are scored with a softmax over classes, and the reported number
    is the maximum test metric over the final epochs (the epoch is chosen on the test set).
    Search (``search=True``): pick (lr, wd) by ``search_hyperparameters`` on that split; otherwise
    ``lr`` and ``wd`` must be given. Final run: train+val, ``epochs_final`` epochs.
    ``wd_steps=()`` = coarse points only. Labels: int class ids, or multi-hot (N, C) (BCE loss).
    Returns {"metric_name", "test_metric", "mode", "best_lr", "best_wd", "search", "per_epoch_test"}.
    """
    _check_probe_args(metric, mode, search, lr, wd)
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    multilabel = train_labels.ndim == 2
    dim = np.asarray(train_feats).shape[-1]
    num_classes = _resolve_num_classes(num_classes, text_classifier, train_labels, test_labels)
    init = initial_weight(text_classifier, num_classes, dim, seed)
    elevater = mode == "elevater"
    common = dict(
        init_weight=init,
        metric=metric,
        batch_size=batch_size,
        seed=seed,
        multilabel=multilabel,
        softmax_scores=elevater,
    )
    records = []
    if search:
        train_idx, val_idx = (
            validation_split_in_order(train_labels) if elevater else validation_split(train_labels, seed)
        )
        feats = np.asarray(train_feats)
        lrs = list(LEARNING_RATES if lrs is None else lrs)
        lr, wd, records = search_hyperparameters(
            feats[train_idx],
            train_labels[train_idx],
            feats[val_idx],
            train_labels[val_idx],
            lrs=lrs,
            epochs=epochs_search,
            wd_steps=wd_steps,
            score_epoch="best" if elevater else "late_mean",
            log=log,
            **common,
        )
    _, _, scores = train_heads(
        train_feats, train_labels, test_feats, test_labels, lrs=[lr], wds=[wd], epochs=epochs_final, **common
    )
    per_epoch = scores[0].tolist()
    test_metric = per_epoch[-1] if mode == "honest" else max(per_epoch)
    if log:
        log(f"linear probe final: lr={lr:g} wd={wd:g} {metric}={test_metric:.2f} ({mode})")
    return {
        "metric_name": metric,
        "test_metric": test_metric,
        "mode": mode,
        "best_lr": float(lr),
        "best_wd": float(wd),
        "search": records,
        "per_epoch_test": per_epoch,
    }


def _check_probe_args(metric, mode, search, lr, wd) -> None:
    if metric not in METRIC_NAMES:
        raise GenBenchError(f"run_linear_probe: unknown metric {metric!r}; valid: {', '.join(METRIC_NAMES)}")
    if mode not in REPORT_MODES:
        raise GenBenchError(f"run_linear_probe: unknown mode {mode!r}; valid: {', '.join(REPORT_MODES)}")
    if not search and (lr is None or wd is None):
        raise GenBenchError("run_linear_probe: search=False needs both lr and wd")


def _resolve_num_classes(num_classes, text_classifier, train_labels, test_labels) -> int:
    if num_classes is not None:
        return int(num_classes)
    if text_classifier is not None:
        return int(np.asarray(text_classifier).shape[0])
    if train_labels.ndim == 2:
        return int(train_labels.shape[1])
    return int(max(train_labels.max(), test_labels.max())) + 1
