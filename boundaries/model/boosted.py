"""Gradient-boosted trees as plain arrays: fitted with scikit-learn, shipped inside a weights-only
checkpoint, evaluated without scikit-learn.

scikit-learn's ``HistGradientBoostingClassifier`` fits the frame classifier (fast, handles
unscaled features and class imbalance). Its only serialisation is pickle, which executes code on
load, and ``torch.load(weights_only=True)`` rightly refuses it. So the fitted trees are exported
as arrays (feature, threshold, children, leaf value per node) and evaluated here (a loop compiled
by numba, or numpy on a few rows); a test checks both against ``predict_proba``. Evaluation also
spares ``boundaries detect`` importing scikit-learn.
"""

import functools

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


TREE_ARRAYS = ("feature", "threshold", "left", "right", "missing_left", "value", "roots")
COMPILED_FROM_ROWS = 2000  # rows this process walks in numpy before it loads numba (below)
_rows_walked = 0


def predict_proba(trees: dict, X: np.ndarray) -> np.ndarray:
    """P(positive) for every row of ``X [n_rows, n_features]``; equals the classifier's
    ``predict_proba(X)[:, 1]`` (to float rounding)."""
    global _rows_walked
    X = np.ascontiguousarray(X, dtype=np.float64)
    # The compiled walk does not check bounds: trees that read a column the rows lack (a
    # checkpoint from a newer version) must fail here, not read past the array.
    if len(X) and int(np.max(trees["feature"])) >= X.shape[1]:
        raise ValueError(f"the trees read column {int(np.max(trees['feature']))} of rows with "
                         f"{X.shape[1]} columns: the checkpoint needs a newer boundaries")
    arrays = [np.ascontiguousarray(trees[k]) for k in TREE_ARRAYS]
    _rows_walked += len(X)
    raw = _compiled_tree_sums()(X, *arrays) if _rows_walked > COMPILED_FROM_ROWS \
        else _numpy_tree_sums(X, *arrays)
    raw += float(np.asarray(trees["baseline"])[0])
    return 1.0 / (1.0 + np.exp(-raw))


def _numpy_tree_sums(X, feature, threshold, left, right, missing_left, value, roots):
    """The walk below in numpy: every (row, tree) pair moves one level per step. About 10x
    slower per row than the compiled walk (it was 63 % of the detector's time on an hour of
    audio), but importing numba and loading its cached code costs ~0.5 s, more than this walk
    takes on the first ``COMPILED_FROM_ROWS`` rows (~8 minutes of audio): a process that
    detects on one song, and ``boundaries detect``'s start-up, never pay for numba."""
    rows = np.arange(len(X))[:, None]
    nodes = np.broadcast_to(roots, (len(X), len(roots))).copy()
    inner = left[nodes] >= 0
    while inner.any():
        at = nodes[inner]
        x = X[np.broadcast_to(rows, nodes.shape)[inner], feature[at]]
        go_left = np.where(np.isnan(x), missing_left[at], x <= threshold[at])
        nodes[inner] = np.where(go_left, left[at], right[at])
        inner[inner] = left[nodes[inner]] >= 0
    return value[nodes].sum(axis=1)


@functools.cache
def _compiled_tree_sums():
    """numba's JIT of :func:`_tree_sums`, cached on disk after the first run."""
    import numba

    return numba.njit(cache=True, nogil=True)(_tree_sums)


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
