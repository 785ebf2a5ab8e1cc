"""Proxy-A distance (Ben-David et al. 2007): how well a linear classifier separates domains."""

import warnings

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import l2_normalize
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width

DEFAULT_CS = (0.001, 0.01, 0.1, 1, 10)
DANN_CS = tuple(np.logspace(-5, 4, 10).tolist())  # the original GenBench / DANN reference grid
_MAX_ITER = 10000


def pad_from_error(error):
    """PAD = 2 (1 - 2 e') with e' = min(e, 1 - e): in [0, 2], 2 = perfectly separable."""
    folded = min(error, 1.0 - error)
    return 2.0 * (1.0 - 2.0 * folded)


def _check_pair(source, target, min_rows, Cs):
    if len(Cs) == 0:
        raise GenBenchError("proxy-A distance: Cs (the SVM C values to try) is empty")
    source = as_feature_matrix(source, "source", min_rows=min_rows)
    target = as_feature_matrix(target, "target", min_rows=min_rows)
    same_width(source, target, "source", "target")
    return source, target


def _balanced_domains(source, target, rng):
    """Both sets cut to n = min(N_s, N_t) rows (the larger one subsampled); labels 0/1."""
    n = min(source.shape[0], target.shape[0])
    source = source[np.sort(rng.choice(source.shape[0], n, replace=False))]
    target = target[np.sort(rng.choice(target.shape[0], n, replace=False))]
    return np.vstack([source, target]), np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]


def proxy_a_distance(source, target, seed=0, Cs=DEFAULT_CS):
    """Proxy-A distance with an honest protocol.

    Balanced domains (larger set subsampled with `seed`), a shuffled 50/50 split stratified
    by domain, a linear SVM on standardised features whose C is chosen by 3-fold
    cross-validation on the training half only; e = held-out error on the other half,
    PAD = 2 (1 - 2 min(e, 1 - e)). Returns {"pad", "error", "C"} (error before folding)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    source, target = _check_pair(source, target, 6, Cs)
    rng = np.random.default_rng(seed)
    features, domain = _balanced_domains(source, target, rng)
    x_train, x_test, y_train, y_test = train_test_split(
        features, domain, test_size=0.5, stratify=domain, shuffle=True, random_state=seed
    )
    model = make_pipeline(StandardScaler(), LinearSVC(max_iter=_MAX_ITER, random_state=seed))
    search = GridSearchCV(model, {"linearsvc__C": list(Cs)}, cv=StratifiedKFold(3, shuffle=True, random_state=seed))
    search.fit(x_train, y_train)
    error = float(np.mean(search.predict(x_test) != y_test))
    return {"pad": pad_from_error(error), "error": error, "C": float(search.best_params_["linearsvc__C"])}


DANN_MAX_IMAGES = 1000
DANN_SOURCE_IMAGES = 200  # the original's feature_distances: random.sample of 200 generated images
DANN_MAX_ITER = 1_000_000  # libsvm iterations per C; -1: none (the original's), see below


def _at_most(features, n, rng):
    """``features`` itself, or ``n`` of its rows drawn without replacement (order kept)."""
    if features.shape[0] <= n:
        return features
    return features[np.sort(rng.choice(features.shape[0], n, replace=False))]


def _drawn(features, n, rng):
    """``min(n, N)`` rows drawn without replacement, in the order drawn (as ``random.sample``)."""
    return features[rng.permutation(features.shape[0])[:n]]


def proxy_a_distance_paper(
    source,
    target,
    Cs=DANN_CS,
    source_images=DANN_SOURCE_IMAGES,
    max_images=DANN_MAX_IMAGES,
    max_iter=DANN_MAX_ITER,
    seed=0,
):
    """Proxy-A distance as the original GenBench computes it (``evaluation_utils.py``:
    ``feature_distances`` and ``proxy_a_distance``, commented out at its HEAD) - OPTIMISTIC, for
    comparison with published numbers only.

    ``source`` (N_s x D) is every image of the external set (the original globs the whole
    generated folder, not the pack); ``source_images`` of its rows are drawn at random, in the
    order drawn (the original's unseeded ``random.sample(..., 200)``; here seeded). ``target``
    (N_t x D) is the real test split, in dataset order. Both are L2-normalised row-wise. Each
    set is split into halves in that order (no shuffling, no balancing); for every C in ``Cs``
    (default logspace(-5, 4, 10)) ``StandardScaler`` then ``SVC(kernel="linear", C=C)`` is fitted
    on the first halves, its error on the second halves is folded (e' = min(e, 1 - e)), and the
    smallest e' over C is kept: C is chosen on the test data, which biases PAD upwards. With
    unbalanced sets a classifier that always answers the larger domain already reaches
    e = n_small / n, so PAD cannot fall below 2 (1 - 2 n_small / n) there.

    Two departures, for time, both off when set large enough: a test split of more than
    ``max_images`` rows is cut to a seeded subset of that many, order kept; and libsvm stops
    after ``max_iter`` iterations per C (-1: never, as the original). On standardised,
    overlapping sets the high C values barely converge: 100 + 500 rows of 64 dimensions took
    490 thousand iterations (0.4 s) at C = 10 and 62 million (50 s) at C = 1000 here.
    Returns {"pad", "error", "C", "stopped"}: ``stopped`` counts the C values libsvm stopped
    at ``max_iter`` (0: every fit ran to convergence, the original's answer exactly)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    source, target = _check_pair(source, target, 2, Cs)
    rng = np.random.default_rng(seed)
    source, target = _drawn(source, source_images, rng), _at_most(target, max_images, rng)
    if source.shape[0] < 2:
        raise GenBenchError(f"proxy-A distance: source_images={source_images} leaves fewer than 2 source rows")
    source = l2_normalize(source, axis=1, where="source")
    target = l2_normalize(target, axis=1, where="target")
    half_s, half_t = source.shape[0] // 2, target.shape[0] // 2
    x_train = np.vstack([source[:half_s], target[:half_t]])
    y_train = np.r_[np.zeros(half_s, dtype=int), np.ones(half_t, dtype=int)]
    x_test = np.vstack([source[half_s:], target[half_t:]])
    y_test = np.r_[np.zeros(source.shape[0] - half_s, dtype=int), np.ones(target.shape[0] - half_t, dtype=int)]
    best, stopped = None, 0
    for C in Cs:
        svc = SVC(C=float(C), kernel="linear", max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # counted in "stopped" instead
            classifier = make_pipeline(StandardScaler(), svc).fit(x_train, y_train)
        stopped += int(max_iter > 0 and int(np.max(svc.n_iter_)) >= max_iter)
        error = float(np.mean(classifier.predict(x_test) != y_test))
        folded = min(error, 1.0 - error)
        if best is None or folded < best[0]:
            best = (folded, float(C))
    return {"pad": pad_from_error(best[0]), "error": best[0], "C": best[1], "stopped": float(stopped)}
