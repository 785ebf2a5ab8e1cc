"""Proxy-A distance (Ben-David et al. 2007): how well a linear classifier separates domains."""

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width

DEFAULT_CS = (0.001, 0.01, 0.1, 1, 10)
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


def proxy_a_distance_dann_reference(source, target, Cs=DEFAULT_CS):
    """Proxy-A distance as the DANN reference code computes it - OPTIMISTIC, for comparison
    with published numbers only.

    Each set is split into halves in the given order (no shuffling, no balancing); a linear
    SVM on raw features is trained on the first halves for every C, its error on the second
    halves is folded (e' = min(e, 1 - e)), and the smallest e' over C is kept: C is chosen
    on the test data, which biases PAD upwards. Returns {"pad", "error", "C"}."""
    source, target = _check_pair(source, target, 2, Cs)
    half_s, half_t = source.shape[0] // 2, target.shape[0] // 2
    x_train = np.vstack([source[:half_s], target[:half_t]])
    y_train = np.r_[np.zeros(half_s, dtype=int), np.ones(half_t, dtype=int)]
    x_test = np.vstack([source[half_s:], target[half_t:]])
    y_test = np.r_[np.zeros(source.shape[0] - half_s, dtype=int), np.ones(target.shape[0] - half_t, dtype=int)]
    best = None
    for C in Cs:
        classifier = LinearSVC(C=C, max_iter=_MAX_ITER, random_state=0).fit(x_train, y_train)
        error = float(np.mean(classifier.predict(x_test) != y_test))
        folded = min(error, 1.0 - error)
        if best is None or folded < best[0]:
            best = (folded, C)
    return {"pad": pad_from_error(best[0]), "error": best[0], "C": float(best[1])}
