"""The placement chooser: where a detection's hump is wide, place it from the hump's edges too,
and let a small logistic model say which placement is the crossover (numpy).

Placement (:mod:`placement`) searches +-7 s around a detection under a 1-s prior. A long EQ
handover draws a broad hump of activation over the first half of its overlap, where the
incoming highs ramp in, and the detection sits in the middle of that hump, 3-10 s before the
bass swap that is the labelled instant: out of the prior's reach. Placing from a start near the
hump's right (or left) edge reaches it, but which start is right depends on the kind of
transition: a fade's right start lands late (MODEL_CARD.md, sessions 25-26). So each detection
whose hump reaches more than ``MIN_GAP_S`` beyond it on a side gets a second (third) candidate,
placed from ``EDGE_BACK_S`` inside that edge exactly as the first, and a logistic regression
over what each candidate's placed frame looks like (its scores, the hump's shape, the fitted
ramps of the incoming share in all bands and in the bass below 200 Hz, each also against the
first candidate's) picks the one most likely to be within ``LABEL_S`` of a crossover. The
first candidate is kept unless another scores higher.
"""

from dataclasses import dataclass

import numpy as np

from boundaries.detection import peaks, placement

HUMP_LEVEL = 0.35  # a hump: the frames around the peak at or above this share of its height
HUMP_SEARCH_S = 5.0  # the peak is looked for within this of the detection
EDGE_BACK_S = 2.0  # a candidate starts this far inside the hump's edge
MIN_GAP_S = 3.0  # an edge nearer than this to the detection gives no candidate
LABEL_S = 1.5  # training: a candidate is right when placed within this of a crossover
SIDES = ("base", "right", "left")
SCORES = ("score", "raw", "raw_max", "trees", "loc", "act_placed", "act_start")
# Placement-row columns (placement.N_COLUMNS layout) of the placed frame: the ramp fits of the
# incoming share (residual, length; first and second fit) in all bands, then in the bass below
# 200 Hz, the bass share and its 1-s and 2-s balances. An EQ handover's swap is a short bass ramp
# inside a long all-band one; a fade ramps alike in both.
SIGNATURE = (60, 61, 66, 67, 78, 79, 80, 81, 72, 74, 75)
N_FEATURES = 13 + len(SCORES) + 5 + 2 * len(SIGNATURE)


@dataclass(frozen=True)
class Hump:
    """A detection and the hump of activation around it (seconds)."""

    t_s: float
    strength: float
    left_s: float
    right_s: float
    top: float

    def starts(self) -> dict:
        """Side -> the start placement searches from: the detection, and where the hump reaches
        more than ``MIN_GAP_S`` beyond it, a point ``EDGE_BACK_S`` inside that edge."""
        out = {"base": self.t_s}
        if self.right_s - self.t_s > MIN_GAP_S:
            out["right"] = self.right_s - EDGE_BACK_S
        if self.t_s - self.left_s > MIN_GAP_S:
            out["left"] = self.left_s + EDGE_BACK_S
        return out


def hump(curve: np.ndarray, t_s: float, strength: float, fps: float) -> Hump:
    """The hump of ``curve`` (the activation peaks are picked on) around a detection at
    ``t_s``: its highest frame within +-``HUMP_SEARCH_S``, and the frames on either side that stay
    at or above ``HUMP_LEVEL`` of it without a break."""
    i = int(round(t_s * fps))
    reach = int(HUMP_SEARCH_S * fps)
    lo, hi = max(0, i - reach), min(len(curve), i + reach + 1)
    peak = lo + int(np.argmax(curve[lo:hi]))
    top = float(curve[peak])
    left, right = peaks.run_around(curve >= HUMP_LEVEL * top, peak)
    return Hump(float(t_s), float(strength), left / fps, right / fps, top)


@dataclass(frozen=True)
class Candidate:
    """One placement of a detection: where it started and landed, and what the chooser reads."""

    start_s: float
    placed_s: float
    scores: tuple  # the values of SCORES, in that order
    row: np.ndarray  # the placed frame's placement row


def place_from(local: placement.LocalFrames, start_s: float, trees: dict, locator,
               placing: placement.Placing, curve: np.ndarray, fps: float) -> "Candidate | None":
    """Placement from ``start_s`` as :func:`placement.choose` does it (its best frame: the
    chooser is for ``placing.centroid_s`` 0), with the placed frame's scores and row."""
    (t0, frame_times, probs, located, _), X = placement.score_one(local, start_s, trees,
                                                                     locator)
    if len(probs) == 0:
        return None
    raw, prior = placement.frame_scores(t0, frame_times, probs, located, placing)
    prior = np.broadcast_to(prior, raw.shape)
    k = int(np.argmax(raw * prior))
    placed = float(frame_times[k])
    trees_score = placement.smoothed(probs)[k]
    locator_score = placement.smoothed(located)[k] if located is not None else 1.0
    scores = (raw[k] * prior[k], raw[k], raw.max(), trees_score, locator_score,
              _value_at(curve, placed, fps), _value_at(curve, start_s, fps))
    return Candidate(float(start_s), placed, tuple(float(s) for s in scores), X[k])


def _value_at(curve, t_s, fps) -> float:
    return float(curve[min(len(curve) - 1, max(0, int(round(t_s * fps))))])


def candidates(local, hump_: Hump, trees, locator, placing, curve, fps) -> dict:
    """Side -> :class:`Candidate` for each start of ``hump_`` (sides whose window is empty
    left out)."""
    found = {side: place_from(local, start, trees, locator, placing, curve, fps)
             for side, start in hump_.starts().items()}
    return {side: c for side, c in found.items() if c is not None}


def features(hump_: Hump, cands: dict, side: str) -> np.ndarray:
    """The chooser's ``N_FEATURES`` columns for candidate ``side`` of a detection."""
    c, base = cands[side], cands["base"]
    t0, width = hump_.t_s, hump_.right_s - hump_.left_s
    f = [side == "base", side == "right", side == "left",
         c.placed_s - t0, abs(c.placed_s - t0), c.start_s - t0, c.placed_s - base.placed_s,
         hump_.right_s - t0, t0 - hump_.left_s, width, hump_.top, hump_.strength,
         (c.placed_s - hump_.left_s) / max(width, 1e-3)]
    f += list(c.scores)
    f += [np.log((a + 1e-6) / (b + 1e-6)) for a, b in zip(c.scores[:5], base.scores[:5])]
    signature, base_signature = c.row[list(SIGNATURE)], base.row[list(SIGNATURE)]
    return np.concatenate([np.asarray(f, dtype=float), signature, signature - base_signature])


class Chooser:
    """A standardised logistic regression stored as arrays: ``mean``, ``scale``, ``coef``
    ``[N_FEATURES]`` and ``intercept`` ``[1]`` (fitted by :mod:`boundaries.train.chooser`)."""

    def __init__(self, state: dict):
        self.state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        if self.state["coef"].shape != (N_FEATURES,):
            raise ValueError(f"a chooser of {self.state['coef'].shape} coefficients; this "
                             f"version reads {N_FEATURES}")

    def logits(self, F: np.ndarray) -> np.ndarray:
        s = self.state
        return ((F - s["mean"]) / s["scale"]) @ s["coef"] + s["intercept"][0]

    def pick(self, hump_: Hump, cands: dict) -> str:
        """The side whose candidate scores highest; the first (``base``) on a tie."""
        if len(cands) < 2:
            return "base"
        sides = [s for s in SIDES if s in cands]
        logits = self.logits(np.array([features(hump_, cands, s) for s in sides]))
        return sides[int(np.argmax(logits))]  # argmax keeps the first of equals: base


def placed_time(t_s: float, hump_: Hump, cands: dict, chooser: "Chooser | None") -> float:
    """A detection's time: the candidate ``chooser`` picks (None: the first candidate, the
    placement without a chooser), or where it was found when it has none."""
    if "base" not in cands:
        return float(t_s)
    return cands[chooser.pick(hump_, cands) if chooser is not None else "base"].placed_s


def refine(local, curve, times_s, strengths, fps, trees, locator, placing,
           chooser: Chooser) -> np.ndarray:
    """Each detection placed from its hump's middle and edges, at the candidate ``chooser``
    picks."""
    out = []
    for t, strength in zip(np.asarray(times_s, dtype=float), strengths):
        hump_ = hump(curve, t, strength, fps)
        out.append(placed_time(t, hump_, candidates(local, hump_, trees, locator, placing,
                                                     curve, fps), chooser))
    return np.array(out)
