"""Benchmark: the ELEVATER linear probe on cached features vs re-encoding every image every epoch.

Both ways run the same protocol on the same data (scikit-learn's digits, upsampled to 32 x 32
RGB, encoded by a tiny random open_clip CLIP built in code): same validation split, same seeded
batch order, same weight-decay search (``weight_decay_search``), same final run.

(a) cached: encode every image once, then ``genbench.evaluation.linear_probe.run_linear_probe``.
(b) ELEVATER-style: for every search run and every epoch, a DataLoader over the images ->
    encoder -> BatchNorm1d + Linear head (torch modules, torch.optim.SGD), validation/test
    images re-encoded after every epoch, one run after another.

Usage: python benchmarks/linear_probe.py [--quick] [--seed 0] [--json out.json]
``--quick`` = 2 learning rates x the 7 coarse weight decays, for both ways.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genbench.evaluation.encoders import load_encoder  # noqa: E402
from genbench.evaluation.features import build_text_classifier  # noqa: E402
from genbench.evaluation.linear_probe import (
    LEARNING_RATES,
    WD_STEPS,
    WEIGHT_DECAYS,
    epoch_batches,
    initial_weight,  # noqa: E402
    run_linear_probe,
    validation_split,
    weight_decay_search,
)
from genbench.evaluation.metrics.classification import dataset_metric  # noqa: E402
from genbench.models.tiny import build_tiny_open_clip  # noqa: E402

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATE = 'a photo of the number: "{}".'
METRIC = "accuracy"
EVAL_BATCH = 256


def digits_as_images(size: int = 32):
    """scikit-learn digits (8 x 8, values 0-16) as RGB PIL images of ``size`` px, and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [
        Image.fromarray((d * 255.0 / 16.0).astype(np.uint8)).resize((size, size), Image.BICUBIC).convert("RGB")
        for d in digits.images
    ]
    return images, digits.target.astype(np.int64)


class PreprocessedImages(torch.utils.data.Dataset):
    """Images passed through the encoder's preprocessing on every access (as ELEVATER's loaders do)."""

    def __init__(self, images, preprocess):
        self.images, self.preprocess = images, preprocess

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.preprocess(self.images[i])


def encode_all(encoder, images) -> np.ndarray:
    """Encode ``images`` in order, batch by batch (preprocess + encoder)."""
    loader = torch.utils.data.DataLoader(PreprocessedImages(images, encoder.preprocess), batch_size=EVAL_BATCH)
    return torch.cat([encoder.encode_images(batch) for batch in loader]).numpy()


# --------------------------------------------------------------------------- (b) re-encoding


def train_run_reencoding(encoder, train_images, train_y, eval_images, eval_y, *, lr, wd, init, epochs, seed):
    """One ELEVATER run: every epoch re-encodes the training batches and the evaluation images."""
    dim = init.shape[1]
    head = torch.nn.Sequential(torch.nn.BatchNorm1d(dim, affine=False), torch.nn.Linear(dim, init.shape[0]))
    with torch.no_grad():
        head[1].weight.copy_(init)
        head[1].bias.zero_()
    optimiser = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    loss_fn = torch.nn.CrossEntropyLoss()
    targets = torch.as_tensor(train_y)
    dataset = PreprocessedImages(train_images, encoder.preprocess)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(epochs):
        batches = [b.tolist() for b in epoch_batches(len(dataset), 64, generator)]
        head.train()
        for batch, images in zip(batches, torch.utils.data.DataLoader(dataset, batch_sampler=batches)):
            optimiser.zero_grad()
            loss_fn(head(encoder.encode_images(images)), targets[batch]).backward()
            optimiser.step()
        head.eval()
        with torch.no_grad():
            logits = head(torch.from_numpy(encode_all(encoder, eval_images)))
        scores.append(_metric_or_zero(eval_y, logits))
    return scores


def _metric_or_zero(labels, logits):
    if not torch.isfinite(logits).all():
        return 0.0
    return dataset_metric(METRIC, labels, torch.softmax(logits, 1).numpy())


def probe_reencoding(
    encoder, images, labels, test_images, test_labels, *, init, lrs, wd_steps, seed, epochs_search, epochs_final
):
    """The whole protocol, ELEVATER-style: sequential runs, images re-encoded on every epoch."""
    train_idx, val_idx = validation_split(labels, seed)
    train_images, val_images = [images[i] for i in train_idx], [images[i] for i in val_idx]
    best = (-np.inf, None, None)
    for lr in lrs:

        def score(index, lr=lr):
            return max(
                train_run_reencoding(
                    encoder,
                    train_images,
                    labels[train_idx],
                    val_images,
                    labels[val_idx],
                    lr=lr,
                    wd=WEIGHT_DECAYS[index],
                    init=init,
                    epochs=epochs_search,
                    seed=seed,
                )
            )

        scores = {}

        def cached_score(i, scores=scores, score=score):
            return scores.setdefault(i, score(i))

        best_index, _ = weight_decay_search(cached_score, steps=wd_steps)
        if scores[best_index] > best[0]:
            best = (scores[best_index], lr, WEIGHT_DECAYS[best_index])
    per_epoch = train_run_reencoding(
        encoder,
        images,
        labels,
        test_images,
        test_labels,
        lr=best[1],
        wd=best[2],
        init=init,
        epochs=epochs_final,
        seed=seed,
    )
    return {"test_metric": per_epoch[-1], "best_lr": best[1], "best_wd": best[2], "per_epoch_test": per_epoch}


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    """Run both ways, print accuracies, times and the speed ratio; return them as a dict."""
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    lrs = list(LEARNING_RATES[-2:]) if args.quick else list(LEARNING_RATES)
    wd_steps = () if args.quick else WD_STEPS
    images, labels = digits_as_images()
    split = len(images) * 2 // 3
    with tempfile.TemporaryDirectory() as tmp:
        encoder = load_encoder(build_tiny_open_clip(Path(tmp) / "tiny_clip", seed=0))
        text = build_text_classifier(encoder, DIGIT_NAMES, [TEMPLATE])
    init = initial_weight(text, len(DIGIT_NAMES), text.shape[1], args.seed)
    common = dict(seed=args.seed, epochs_search=args.epochs_search, epochs_final=args.epochs_final)

    start = time.perf_counter()
    feats = encode_all(encoder, images)
    cached = run_linear_probe(
        feats[:split],
        labels[:split],
        feats[split:],
        labels[split:],
        metric=METRIC,
        text_classifier=text,
        lrs=lrs,
        wd_steps=wd_steps,
        **common,
    )
    cached_s = time.perf_counter() - start

    start = time.perf_counter()
    reencoded = probe_reencoding(
        encoder,
        images[:split],
        labels[:split],
        images[split:],
        labels[split:],
        init=init,
        lrs=lrs,
        wd_steps=wd_steps,
        **common,
    )
    reencoded_s = time.perf_counter() - start

    result = {
        "quick": args.quick,
        "threads": args.threads,
        "n_train": split,
        "n_test": len(images) - split,
        "cached": {
            "accuracy": cached["test_metric"],
            "best_lr": cached["best_lr"],
            "best_wd": cached["best_wd"],
            "seconds": cached_s,
        },
        "reencoding": {
            "accuracy": reencoded["test_metric"],
            "best_lr": reencoded["best_lr"],
            "best_wd": reencoded["best_wd"],
            "seconds": reencoded_s,
        },
        "speed_ratio": reencoded_s / cached_s,
        "accuracy_difference": abs(cached["test_metric"] - reencoded["test_metric"]),
    }
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 learning rates x the 7 coarse weight decays")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs-search", type=int, default=10)
    parser.add_argument("--epochs-final", type=int, default=50)
    parser.add_argument("--json", help="also write the results to this JSON file")
    return parser.parse_args(argv)


def _print(result):
    for way in ("cached", "reencoding"):
        r = result[way]
        print(
            f"{way:>11}: accuracy {r['accuracy']:.2f}%  lr={r['best_lr']:g} wd={r['best_wd']:g}  {r['seconds']:.1f} s"
        )
    print(
        f"speed ratio (re-encoding / cached): {result['speed_ratio']:.1f}x; "
        f"accuracy difference {result['accuracy_difference']:.2f} pt"
    )


if __name__ == "__main__":
    main()
