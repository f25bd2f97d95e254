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

With a second map, strength -> P(placed within 0.5 s) (``track.expected_f_fine``), k maximises the
mean of the two expected Fs, F(k) above and the same sum of the fine probabilities over the same
k + N: the figure every evaluation reports is the mean of F@3 and F@0.5 per file, and a weak
candidate that is rarely placed within 0.5 s costs the F@0.5 half more than it gains the other.
"""

import numpy as np

# candidates are the peaks above this strength; the calibration decides which are kept
CANDIDATE_THRESHOLD = 0.02
LABEL_S = 3.0  # a candidate is a hit when placed within this of a crossover
FINE_LABEL_S = 0.5  # ... and a fine hit when placed within this


class ExpectedF:
    """The fitted map from strength to hit probability (its breakpoints), the coverage, and
    optionally the map to a fine hit (``fine_strengths``, ``fine_hit_rates``)."""

    def __init__(self, state: dict):
        self.strengths, self.hit_rates = _breakpoints(state, "")
        self.coverage = float(np.asarray(state["coverage"]))
        if not 0 < self.coverage <= 1:
            raise ValueError(f"expected-F state: coverage {self.coverage}")
        self.fine = _breakpoints(state, "fine_") if "fine_strengths" in state else None

    @property
    def state(self) -> dict:
        state = {"strengths": self.strengths, "hit_rates": self.hit_rates,
                 "coverage": np.array(self.coverage)}
        if self.fine is not None:
            state.update(fine_strengths=self.fine[0], fine_hit_rates=self.fine[1])
        return state

    def hit_probabilities(self, strengths) -> np.ndarray:
        """The fitted probability of a hit at each strength (linear between breakpoints and
        flat beyond them: ``IsotonicRegression.predict`` with ``out_of_bounds="clip"``)."""
        return np.interp(strengths, self.strengths, self.hit_rates)

    def keep(self, strengths, probabilities=None) -> np.ndarray:
        """Indices (ascending) of the candidates to keep: the k strongest, k maximising the
        expected F above (with a fine map, the mean of the two expected Fs). ``probabilities``:
        each candidate's ``(P(hit), P(fine hit))`` from the re-scorer (:mod:`rescorer`), which
        then replace the maps' and rank the candidates instead of their strengths."""
        strengths = np.asarray(strengths, dtype=np.float64)
        if not len(strengths):
            return np.zeros(0, dtype=int)
        if probabilities is not None:
            p, fine = (np.asarray(x, dtype=np.float64) for x in probabilities)
            credit = (p + fine) / 2
            order = np.argsort(-credit, kind="stable")
        else:
            p = self.hit_probabilities(strengths)
            # both expected Fs share the denominator k + N, so their mean credits each
            # candidate with the mean of its two probabilities
            credit = p if self.fine is None else (p + np.interp(strengths, *self.fine)) / 2
            order = np.argsort(-strengths, kind="stable")
        gained = np.r_[0.0, np.cumsum(credit[order])]
        expected_n = p.sum() / self.coverage
        k = int(np.argmax(2 * gained / (np.arange(len(gained)) + expected_n + 1e-9)))
        return np.sort(order[:k])


def _breakpoints(state: dict, prefix: str) -> tuple:
    strengths = np.asarray(state[prefix + "strengths"], dtype=np.float64)
    rates = np.asarray(state[prefix + "hit_rates"], dtype=np.float64)
    if not len(strengths) == len(rates) >= 1:
        raise ValueError(f"expected-F state: {len(strengths)} {prefix}breakpoints, "
                         f"{len(rates)} rates")
    return strengths, rates


def in_use(decoding, threshold=None, n_tracks=None) -> bool:
    """Whether a detector's ``decoding`` (an :class:`ExpectedF`, or None) decides: only when
    the user gave neither a threshold nor a track count."""
    return decoding is not None and threshold is None and n_tracks is None


def fit(strengths, hits, coverage: float, fine_hits=None) -> ExpectedF:
    """The map fitted on candidates' ``strengths`` and whether each was a hit (and, given
    ``fine_hits``, whether each was a fine hit: the second map)."""
    state = {"coverage": coverage}
    for prefix, labels in (("", hits), ("fine_", fine_hits)):
        if labels is not None:
            state[prefix + "strengths"], state[prefix + "hit_rates"] = _isotonic(strengths, labels)
    return ExpectedF(state)


def _isotonic(strengths, labels) -> tuple:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(np.asarray(strengths, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return iso.X_thresholds_, iso.y_thresholds_


def hits_and_coverage(truth_s, placed_s, label_s: float = LABEL_S):
    """``(hits, covered)``: whether each placed candidate lies within ``label_s`` of a crossover,
    and how many crossovers have a candidate within ``label_s``."""
    truth_s, placed_s = np.asarray(truth_s, dtype=float), np.asarray(placed_s, dtype=float)
    if not len(truth_s) or not len(placed_s):
        return np.zeros(len(placed_s), dtype=bool), 0
    near = np.abs(placed_s[:, None] - truth_s[None, :]) <= label_s
    return near.any(axis=1), int(near.any(axis=0).sum())
