"""The candidate re-scorer of the expected-F decoding (``track.rescorer``).

The expected-F decoding (:mod:`expected_f`) knows a candidate peak by its strength alone. A peak
of a section change inside a track can be as strong as a crossover's; what tells them apart is
around it: whether it is the strongest hump of its neighbourhood, how broad it is, and what the
row at its peak holds (the "same track?" distances, the recurrence and rhythm columns). Two
small gradient-boosted classifiers (scikit-learn) read those per candidate and give
P(placed within 3 s of a crossover) and P(within 0.5 s), fitted on the validation candidates
where the strength maps are; the decoding then keeps the candidates that maximise the expected F
by those probabilities. On 1,200 mixes of music the detector never heard it raised the mean of
F@3 and F@0.5 by 0.012; on the two test sets the shipped model lost 0.004-0.006 with it
(MODEL_CARD.md, session 32).
"""

import numpy as np

from boundaries.detection import peaks
from boundaries.model import boosted
from boundaries.signal import descriptors

NEIGHBOURHOODS_S = (5.0, 15.0, 30.0)  # the strongest other hump within these ...
OWN_HUMP_S = 2.0  # ... outside this much of the candidate itself
# the lead's classifiers (data/exp32/rescore_lead.py): shallow, slow, no early stopping
CLASSIFIER = dict(max_iter=100, learning_rate=0.05, max_depth=3, min_samples_leaf=20,
                  early_stopping=False, random_state=0)


def candidate_features(acts, times_s, strengths, rows, first, fps: float) -> np.ndarray:
    """``[n_candidates, 7 + n_columns + 1]`` per candidate: its strength; the highest activation
    within each of ``NEIGHBOURHOODS_S`` (its own +-``OWN_HUMP_S`` left out) over its strength;
    its hump's width at half its height (s); its strength rank in the file and the file's
    candidate count; then its nearest row's columns (``rows``) and first-stage probability
    (``first``)."""
    acts, times_s = np.asarray(acts, dtype=np.float64), np.asarray(times_s, dtype=np.float64)
    strengths = np.asarray(strengths, dtype=np.float64)
    centres_s = descriptors.row_centres(len(rows)) / fps
    rank = np.argsort(np.argsort(-strengths))
    own = int(OWN_HUMP_S * fps)
    out = []
    for i, (t, strength) in enumerate(zip(times_s, strengths)):
        c = int(np.clip(round(t * fps), 0, len(acts) - 1))
        values = [strength]
        for reach_s in NEIGHBOURHOODS_S:
            lo, hi = max(0, c - int(reach_s * fps)), min(len(acts), c + int(reach_s * fps) + 1)
            around = acts[lo:hi].copy()
            around[max(0, c - own) - lo:min(len(acts), c + own + 1) - lo] = 0
            values.append(around.max() / max(strength, 1e-6))
        values += [_half_height_width(acts, c) / fps, rank[i], len(times_s)]
        row = int(np.argmin(np.abs(centres_s - t)))
        values += [*rows[row], first[row]]
        out.append(values)
    n_columns = 1 + len(NEIGHBOURHOODS_S) + 3 + np.shape(rows)[1] + 1
    return np.array(out, dtype=np.float64).reshape(len(times_s), n_columns)


def _half_height_width(acts: np.ndarray, c: int) -> int:
    """Frames of the run around ``c`` where the activation stays at half ``acts[c]`` or more."""
    first, last = peaks.run_around(acts >= 0.5 * acts[c], c)
    return last - first


class Rescorer:
    """Two classifiers' arrays (:func:`boosted.export_trees`): ``hit`` (within 3 s) and ``fine``
    (within 0.5 s)."""

    def __init__(self, state: dict):
        self.hit, self.fine = state["hit"], state["fine"]

    @property
    def state(self) -> dict:
        return {"hit": self.hit, "fine": self.fine}

    def probabilities(self, features: np.ndarray) -> tuple:
        """``(P(hit), P(fine hit))`` of each candidate's :func:`candidate_features`."""
        return (boosted.predict_proba(self.hit, features),
                boosted.predict_proba(self.fine, features))


def fit(features: np.ndarray, hits, fine_hits) -> Rescorer:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fitted(labels):
        return boosted.export_trees(HistGradientBoostingClassifier(**CLASSIFIER).fit(
            features, np.asarray(labels, dtype=int)))

    return Rescorer({"hit": fitted(hits), "fine": fitted(fine_hits)})
