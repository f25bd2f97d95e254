"""Gradient-boosted trees as plain arrays: fitted with scikit-learn, shipped inside a weights-only
checkpoint, evaluated with numpy.

scikit-learn's ``HistGradientBoostingClassifier`` fits the frame classifier (fast, handles
unscaled features and class imbalance). Its only serialisation is pickle, which executes code on
load, and ``torch.load(weights_only=True)`` rightly refuses it. So the fitted trees are exported
as arrays (feature, threshold, children, leaf value per node) and evaluated here; a test checks
the result against ``predict_proba``. Evaluation also spares ``boundaries detect`` importing
scikit-learn.
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
    ``predict_proba(X)[:, 1]``. All trees advance one level per step, vectorised over rows."""
    X = np.asarray(X, dtype=np.float64)
    feature, threshold = np.asarray(trees["feature"]), np.asarray(trees["threshold"])
    left, right = np.asarray(trees["left"]), np.asarray(trees["right"])
    missing_left, value = np.asarray(trees["missing_left"]), np.asarray(trees["value"])
    roots = np.asarray(trees["roots"])
    node = np.broadcast_to(roots, (len(X), len(roots))).copy()
    rows = np.arange(len(X))[:, None]
    while True:
        inner = left[node] >= 0
        if not inner.any():
            break
        x = X[rows, feature[node]]
        go_left = np.where(np.isnan(x), missing_left[node], x <= threshold[node])
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    raw = value[node].sum(axis=1) + float(np.asarray(trees["baseline"])[0])
    return 1.0 / (1.0 + np.exp(-raw))
