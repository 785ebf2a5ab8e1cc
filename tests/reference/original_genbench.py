"""What the original GenBench (github.com/Luodian/GenBench at commit dcdcc08) computes, step by
step, on arrays: the known answers for the paired columns (``cler_knn_zs``, ``cler_full_train``,
``fd_paper``, ``pad_dann``, and the carved validation split of ``linear_probe_elevater``).

Line numbers are those of that commit. The original runs these on CLIP ViT-B/32 features it
extracts itself; here the features are given.
"""

import math
from collections import Counter

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from sklearn import svm
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def carve_validation(labels, val_split=0.2):
    """vision_benchmark/evaluation/feature.py, ``get_dataloader`` (lines 100-174), as
    ``construct_dataloader`` calls it on the train manifest (lines 617-618, ``val_split = 0.2``).

    Single-label: for each class, in order of first appearance, the first ceil(n_c val_split)
    rows of that class are validation. Multi-label (N, C) 0/1 rows: each class needs
    ceil(n_c val_split) rows; while some class still needs rows, take the first row holding
    the lowest such class, subtract it from every need, and zero it. Returns the
    (train, validation) row indices as sorted lists."""
    labels = np.array(labels)
    if labels.ndim == 1:
        val = []
        for label, count in Counter(labels.tolist()).items():
            val += np.where(labels == label)[0][: math.ceil(count * val_split)].tolist()
    else:
        need = np.ceil(np.sum(labels, axis=0) * val_split)
        val = []
        while (targets := np.where(need > 0)[0]).size > 0:
            row = int(np.where(labels[:, targets[0]] > 0)[0][0])
            val.append(row)
            need -= labels[row]
            labels[row] = 0
    train = sorted(set(range(len(labels))) - set(val))
    return train, sorted(val)


def zeroshot_train_set(mode, train, val, pack=None):
    """evaluation_utils.py, ``zeroshot_metric`` lines 119-127: the training features every
    score below reads. ``original``: the train manifest's carved train and val parts together
    (the whole train manifest, no few-shot subset: ``NUM_SAMPLES_PER_CLASS`` stays -1);
    ``combined``: those plus the pack; ``extended``: the pack alone. Each argument is a
    (features, labels) pair."""
    parts = {"original": [train, val], "combined": [train, val, pack], "extended": [pack]}[mode]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def zeroshot_scores(train, train_labels, test, text, top_k=10):
    """evaluation_utils.py, ``zeroshot_metric`` lines 133-188, single-label. ``text`` is the
    (D, C) text classifier as ``extract_text_features`` returns it (columns normalised).

    Returns the score matrices by the original's names:
    ``image_text_contrastive`` = softmax(100 x.t) (line 160);
    ``image_topk_label_mean`` = the mean one-hot label of the top_k train rows by cosine (151-162);
    ``image_topk_label_mean_Average_image_text_contrastive`` = their average (164-166);
    ``image_MeanTextImageCLSCenter_contrastive`` = softmax(x . normalise(t_c + mu_c)), mu_c the
    normalised centroid of the normalised train rows of class c (175-187)."""
    train = F.normalize(torch.as_tensor(train, dtype=torch.float64))
    test = F.normalize(torch.as_tensor(test, dtype=torch.float64))
    text = torch.as_tensor(text, dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(train_labels).reshape(-1, 1))
    onehot = F.one_hot(labels.squeeze(1)).to(torch.float64)
    top = (test @ train.T).topk(top_k, dim=-1).indices
    votes = torch.gather(onehot, 0, top.view(-1)[:, None].expand(-1, onehot.shape[-1])).view(*top.shape, -1)
    zero_shot = (100.0 * test @ text).softmax(dim=-1)
    knn = votes.mean(dim=1)
    centres = F.normalize(torch.stack([train[labels[:, 0] == c].mean(dim=0) for c in range(int(labels.max()) + 1)]))
    prototypes = F.normalize(text.T + centres)
    return {
        "image_text_contrastive": zero_shot.numpy(),
        "image_topk_label_mean": knn.numpy(),
        "image_topk_label_mean_Average_image_text_contrastive": ((zero_shot + knn) / 2).numpy(),
        "image_MeanTextImageCLSCenter_contrastive": (test @ prototypes.T).softmax(dim=-1).numpy(),
    }


def fid(train, test):
    """evaluation_utils.py lines 139-149 and 195 with tools/fid.py ``FID.compute`` (lines
    266-285) and ``_compute_fid`` (95-122): rows L2-normalised (``F.normalize``), the train
    features ``real``, the test features ``fake``, both covariances divided by the *real* count
    minus one, tr sqrt by ``scipy.linalg.sqrtm`` of the product, in float64."""
    real = F.normalize(torch.as_tensor(train, dtype=torch.float64))
    fake = F.normalize(torch.as_tensor(test, dtype=torch.float64))
    n = real.shape[0]
    diff1, diff2 = real - real.mean(0), fake - fake.mean(0)
    cov1 = diff1.T @ diff1 / (n - 1)
    cov2 = diff2.T @ diff2 / (n - 1)
    covmean = scipy.linalg.sqrtm((cov1 @ cov2).numpy()).real
    diff = (real.mean(0) - fake.mean(0)).numpy()
    return float(diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * np.trace(covmean))


def proxy_a_distance(source_x, target_x):
    """evaluation_utils.py, ``proxy_a_distance`` (lines 231-266, commented out at this commit):
    each set halved in the given order; for C in logspace(-5, 4, 10) a
    ``StandardScaler`` + linear ``SVC`` pipeline fitted on the first halves; the test risk on the
    second halves folded at 0.5; the smallest kept; PAD = 2 (1 - 2 risk)."""
    half_s, half_t = len(source_x) // 2, len(target_x) // 2
    train_x = np.vstack((source_x[:half_s], target_x[:half_t]))
    train_y = np.hstack((np.zeros(half_s, dtype=int), np.ones(half_t, dtype=int)))
    test_x = np.vstack((source_x[half_s:], target_x[half_t:]))
    test_y = np.hstack((np.zeros(len(source_x) - half_s, dtype=int), np.ones(len(target_x) - half_t, dtype=int)))
    best = 1.0
    for C in np.logspace(-5, 4, 10):
        model = make_pipeline(StandardScaler(), svm.SVC(C=C, kernel="linear", gamma="auto"))
        risk = float(np.mean(model.fit(train_x, train_y).predict(test_x) != test_y))
        best = min(best, 1.0 - risk if risk > 0.5 else risk)
    return 2 * (1.0 - 2 * best)


def feature_distances_pad(drawn_generated, test):
    """evaluation_utils.py, ``feature_distances`` (lines 269-314, commented out): the drawn
    generated images (``random.sample`` of 200 from the whole generated folder, line 290;
    given here as drawn) and the test split, both L2-normalised (lines 307-308), then
    ``proxy_a_distance``."""
    source = F.normalize(torch.as_tensor(drawn_generated, dtype=torch.float64)).numpy()
    target = F.normalize(torch.as_tensor(test, dtype=torch.float64)).numpy()
    return proxy_a_distance(source, target)


def clip_score(image_feats, text_feat):
    """packing_utils.py lines 246-259: ``logits_per_image`` of CLIP ViT-B/16 against
    "a photo of a {category}", i.e. 100 cos (CLIP's logit scale, exp(4.6052) = 100), one
    score per image, used only to rank the images for the pack (line 272)."""
    image = F.normalize(torch.as_tensor(image_feats, dtype=torch.float64))
    text = F.normalize(torch.as_tensor(text_feat, dtype=torch.float64).reshape(1, -1))
    return (100.0 * image @ text.T)[:, 0].numpy()
