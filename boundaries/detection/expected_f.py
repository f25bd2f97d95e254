"""Expected-F decoding: how many of a file's candidate peaks to keep (numpy).

Every figure a user reads is an F per file (``mir_eval.segment.detection``, a mean over files).
A threshold fitted on validation keeps each peak above it whatever else the file holds, and on
music of other packages that threshold is off one way or the other. Here each candidate peak's
strength maps to the probability that it is a crossover within 3 s (a monotone map fitted on
validation detections with ``sklearn.isotonic.IsotonicRegression``), and each file keeps its k
strongest candidates, k maximising the plug-in expected F:

    F(k) = 2 * (p_1 + ... + p_k) / (k + N),    N = (p_1 + ... + p_n) / coverage,

p sorted from the strongest candidate down, N the file's expected number of crossovers (the
candidates' expected hits over the share of crossovers that have a candidate near them at all).
A file whose candidates are all strong keeps them all; one with a single clear peak and a tail of
weak ones keeps the peak. Chosen on held-out music (MODEL_CARD.md, sessions 27-28).
"""

import numpy as np

# candidates are the peaks above this strength; the calibration decides which are kept
CANDIDATE_THRESHOLD = 0.02
LABEL_S = 3.0  # a candidate is a hit when placed within this of a crossover


class ExpectedF:
    """The fitted map from strength to hit probability (its breakpoints) and the coverage."""

    def __init__(self, state: dict):
        self.strengths = np.asarray(state["strengths"], dtype=np.float64)
        self.hit_rates = np.asarray(state["hit_rates"], dtype=np.float64)
        self.coverage = float(np.asarray(state["coverage"]))
        if not (len(self.strengths) == len(self.hit_rates) >= 1 and 0 < self.coverage <= 1):
            raise ValueError(f"expected-F state: {len(self.strengths)} breakpoints, "
                             f"{len(self.hit_rates)} rates, coverage {self.coverage}")

    @property
    def state(self) -> dict:
        return {"strengths": self.strengths, "hit_rates": self.hit_rates,
                "coverage": np.array(self.coverage)}

    def hit_probabilities(self, strengths) -> np.ndarray:
        """The fitted probability of a hit at each strength (linear between breakpoints and
        flat beyond them: ``IsotonicRegression.predict`` with ``out_of_bounds="clip"``)."""
        return np.interp(strengths, self.strengths, self.hit_rates)

    def keep(self, strengths) -> np.ndarray:
        """Indices (ascending) of the candidates to keep: the k strongest, k maximising the
        expected F above."""
        strengths = np.asarray(strengths, dtype=np.float64)
        if not len(strengths):
            return np.zeros(0, dtype=int)
        p = self.hit_probabilities(strengths)
        order = np.argsort(-strengths, kind="stable")
        expected_n = p.sum() / self.coverage
        gained = np.r_[0.0, np.cumsum(p[order])]
        k = int(np.argmax(2 * gained / (np.arange(len(gained)) + expected_n + 1e-9)))
        return np.sort(order[:k])


def in_use(decoding, threshold=None, n_tracks=None) -> bool:
    """Whether a detector's ``decoding`` (an :class:`ExpectedF`, or None) decides: only when
    the user gave neither a threshold nor a track count."""
    return decoding is not None and threshold is None and n_tracks is None


def fit(strengths, hits, coverage: float) -> ExpectedF:
    """The map fitted on candidates' ``strengths`` and whether each was a hit."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(np.asarray(strengths, dtype=np.float64), np.asarray(hits, dtype=np.float64))
    return ExpectedF({"strengths": iso.X_thresholds_, "hit_rates": iso.y_thresholds_,
                      "coverage": coverage})


def hits_and_coverage(truth_s, placed_s, label_s: float = LABEL_S):
    """``(hits, covered)``: whether each placed candidate lies within ``label_s`` of a crossover,
    and how many crossovers have a candidate within ``label_s``."""
    truth_s, placed_s = np.asarray(truth_s, dtype=float), np.asarray(placed_s, dtype=float)
    if not len(truth_s) or not len(placed_s):
        return np.zeros(len(placed_s), dtype=bool), 0
    near = np.abs(placed_s[:, None] - truth_s[None, :]) <= label_s
    return near.any(axis=1), int(near.any(axis=0).sum())
