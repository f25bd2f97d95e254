"""Gradient-boosted trees as plain arrays: fitted with scikit-learn, shipped inside a weights-only
checkpoint, evaluated without scikit-learn.

scikit-learn's ``HistGradientBoostingClassifier`` fits the frame classifier (fast, handles
unscaled features and class imbalance). Its only serialisation is pickle, which executes code on
load, and ``torch.load(weights_only=True)`` rightly refuses it. So the fitted trees are exported
as arrays (feature, threshold, children, leaf value per node) and evaluated here (a loop compiled
by numba); a test checks the result against ``predict_proba``. Evaluation also spares
``boundaries detect`` importing scikit-learn.
"""

import numpy as np


def export_trees(model) -> dict:
    """Arrays of a fitted binary ``HistGradientBoostingClassifier`` (numerical features only)."""
    predictors = [tree[0] for tree in model._predictors]  # one tree per iteration (binary)
    sizes = np.array([len(p.nodes) for p in predictors])
    nodes = np.concatenate([p.nodes for p in predictors])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    owner = np.repeat(offsets, sizes)
    return {
        "feature": nodes["feature_idx"].astype(np.int32),
        "threshold": nodes["num_threshold"].astype(np.float64),
        "left": np.where(nodes["is_leaf"], -1, nodes["left"] + owner).astype(np.int64),
        "right": np.where(nodes["is_leaf"], -1, nodes["right"] + owner).astype(np.int64),
        "missing_left": nodes["missing_go_to_left"].astype(bool),
        "value": nodes["value"].astype(np.float64),
        "roots": offsets.astype(np.int64),
        "baseline": np.asarray(model._baseline_prediction, dtype=np.float64).ravel(),
    }


def predict_proba(trees: dict, X: np.ndarray) -> np.ndarray:
    """P(positive) for every row of ``X [n_rows, n_features]``; equals the classifier's
    ``predict_proba(X)[:, 1]`` (to float rounding)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    raw = _tree_sums(X, *(np.ascontiguousarray(trees[k]) for k in (
        "feature", "threshold", "left", "right", "missing_left", "value", "roots")))
    raw += float(np.asarray(trees["baseline"])[0])
    return 1.0 / (1.0 + np.exp(-raw))


def _compiled(function):
    """numba's JIT, cached on disk after the first run (librosa has loaded numba already on the
    detect path). The numpy version of this walk was 63 % of the detector's time on an hour of
    audio: it moved every (row, tree) pair one level per step through fancy indexing."""
    import numba

    return numba.njit(cache=True, nogil=True)(function)


@_compiled
def _tree_sums(X, feature, threshold, left, right, missing_left, value, roots):
    out = np.zeros(X.shape[0])
    for i in range(X.shape[0]):
        total = 0.0
        for root in roots:
            node = root
            while left[node] >= 0:
                x = X[i, feature[node]]
                if np.isnan(x):
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total
    return out
