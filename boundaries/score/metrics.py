"""Scores: frame-level through scikit-learn, boundary hit rates through mir_eval (no torch).

Boundary hit rates are ``mir_eval.segment.detection`` itself, fed intervals built from
``[0, *boundaries, duration]``; with ``trim=True`` mir_eval drops the first and last edge, so only
interior boundaries are scored, the convention of this package. mir_eval returns 0 for P, R and F
when either side is empty, and so do these functions.
"""

import warnings

import numpy as np


def frame_scores(probs, labels, threshold: float = 0.5, beta: float = 1.0) -> dict:
    """Precision, recall, F-beta, accuracy at ``threshold``; ROC-AUC and PR-AUC (average precision).

    AUCs are NaN when ``labels`` hold one class only (they are undefined there).
    """
    from sklearn import metrics

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    assert probs.shape == labels.shape, (probs.shape, labels.shape)
    predicted = (probs >= threshold).astype(int)
    precision, recall, f, _ = metrics.precision_recall_fscore_support(
        labels, predicted, beta=beta, average="binary", zero_division=0)
    both = 0 < labels.sum() < len(labels)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f),
            "accuracy": float(metrics.accuracy_score(labels, predicted)),
            "roc_auc": float(metrics.roc_auc_score(labels, probs)) if both else float("nan"),
            "pr_auc": float(metrics.average_precision_score(labels, probs)) if both
            else float("nan")}


def naive_scores(labels, beta: float = 1.0) -> dict:
    """The all-negative model's scores: high accuracy, nothing found."""
    return frame_scores(np.zeros(len(labels)), labels, threshold=0.5, beta=beta)


def times_to_intervals(times_s, duration_s: float) -> np.ndarray:
    """Interior boundary times -> mir_eval intervals ``[[0, b1], [b1, b2], ..., [bn, end]]``."""
    times = np.asarray(times_s, dtype=np.float64)
    times = times[(times > 0) & (times < duration_s)]
    edges = np.concatenate([[0.0], np.unique(times), [float(duration_s)]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def boundary_scores(ref_s, est_s, duration_s: float, window: float, trim: bool = True,
                    beta: float = 1.0) -> dict:
    """Hit-rate precision, recall, F within ``window`` seconds, and the two median deviations.

    Exactly ``mir_eval.segment.detection`` and ``mir_eval.segment.deviation`` on intervals made
    by :func:`times_to_intervals`; deviations are NaN when a side is empty.
    """
    import mir_eval

    ref = times_to_intervals(ref_s, duration_s)
    est = times_to_intervals(est_s, duration_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty boundary sets; 0 is the answer
        p, r, f = mir_eval.segment.detection(ref, est, window=window, beta=beta, trim=trim)
        ref_to_est, est_to_ref = mir_eval.segment.deviation(ref, est, trim=trim)
    return {"precision": float(p), "recall": float(r), "f": float(f),
            "ref_to_est_deviation": float(ref_to_est), "est_to_ref_deviation": float(est_to_ref)}


def hit_counts(ref_s, est_s, window: float) -> tuple:
    """``(hits, n_ref, n_est)`` with mir_eval's one-to-one matching, for micro totals."""
    import mir_eval

    ref = np.asarray(ref_s, dtype=np.float64)
    est = np.asarray(est_s, dtype=np.float64)
    if ref.size == 0 or est.size == 0:
        return 0, int(ref.size), int(est.size)
    return len(mir_eval.util.match_events(ref, est, window)), int(ref.size), int(est.size)


def f_measure(precision: float, recall: float, beta: float = 1.0) -> float:
    if precision <= 0 and recall <= 0:
        return 0.0
    return (1 + beta ** 2) * precision * recall / (beta ** 2 * precision + recall)
