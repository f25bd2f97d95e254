"""Placement: move each detected crossover to the right instant within +-``SEARCH_S`` (numpy).

The detector finds crossovers at ~0.23 s resolution from evidence tens of seconds wide; within a
crossfade or an EQ handover nothing local marks the labelled instant (the middle of the overlap,
the bass swap). This stage looks at ~46 ms frames around each detection:

- short-window before/after descriptors (0.25-4 s): a cut, a gap's silence, the bass swap;
- *which track is playing*: the spectrum of each frame compared with the outgoing track's
  (taken 5-12 s before the detection) and the incoming one's (5-12 s after). The crossover of a
  crossfade is where the frame stops resembling the one and starts resembling the other.
- the two tracks' fitted gains (:mod:`gains`): the incoming share of each frame's power, its
  balance before and after the frame, and the fit of a whole crossfade ramp centred there; a
  second fit takes its references just outside the overlap the first one found, where each
  track plays alone even when the fade is longer than 10 s.

Boosted trees of its own score each frame as "the crossover" (within ``RADIUS_S``), and the
detection moves to the best-scoring frame (scores averaged over ``SMOOTH_FRAMES`` first).

The trees store the search width they were trained with (``search_s``); trees without it (before
session 8) searched +-3 s, and read only the first 72 columns of a row.
"""

from dataclasses import dataclass

import numpy as np

from boundaries.detection import gains
from boundaries.model import boosted
from boundaries.signal import timebase
from boundaries.signal.descriptors import (
    LOW_BANDS,
    SideSums,
    pool_frames,
    pooled_views,
    window_descriptors,
)

POOL = 2  # mel frames per placement frame: 46 ms
WINDOWS_S = (0.25, 0.5, 1.0, 2.0, 4.0)
# Frames within +-SEARCH_S of a detection are scored; training sees each crossover from a
# detection up to JITTER_S off. Wider than the +-3 s (jitter 2 s) of the trees before session 8:
# on validation F@0.5 0.541 -> 0.579 with the bass set below (MODEL_CARD.md, session 8).
SEARCH_S, JITTER_S = 7.0, 5.0
LEGACY_SEARCH_S = 3.0  # trees without a stored width
SMOOTH_FRAMES = 5  # scores averaged over 0.23 s before the best frame is chosen
REF_NEAR_S, REF_FAR_S = 5.0, 12.0
RADIUS_S = 0.25
BALANCE_S = (0.5, 1.0, 2.0, 4.0, 8.0)
RAMP_HALF_S = 12.0  # each ramp fit sees +-12 s of the share
SOLO_GAP_S, SOLO_SPAN_S = 0.5, 8.0  # the second fit's references: 0.5-8 s beyond the overlap
# The bass a DJ's EQ swaps lies below ~200 Hz: at 80 Slaney mel bands from 27.5 Hz (41 Hz apart
# below 1 kHz) that is the first 4 bands; LOW_BANDS (12) reaches ~500 Hz, where the incoming
# track's mids already ramp in during the first half of an EQ handover, so a share fitted there
# rises early (median -0.9 s on validation EQ handovers longer than 8 s; -0.0 s with 4 bands).
EQ_BASS_BANDS = 4
# all, LOW_BANDS, the rest (the first 72 columns), then the EQ bass (appended in session 8)
BAND_SETS = (slice(None), slice(0, LOW_BANDS), slice(LOW_BANDS, None), slice(0, EQ_BASS_BANDS))
GAIN_COLUMNS = 1 + len(BALANCE_S) + 2 * 2  # per band set: share, balances, two ramp fits
# New columns are only ever appended: the placement trees of older checkpoints read the first 42
# (short-window descriptors, which track, offset) or 72 (the first three band sets) and keep
# working.
N_COLUMNS = 7 * len(WINDOWS_S) + 7 + len(BAND_SETS) * GAIN_COLUMNS


class LocalFrames:
    """Fine-rate views of one file, shared by all of its detections. File-wide statistics are
    computed once; the descriptors only around each detection (a few seconds, not the file)."""

    def __init__(self, mel_db: np.ndarray, fps: float):
        self.mel_db = mel_db
        self.fps = fps / POOL
        self.z, self.mfcc, level, self.flux = pooled_views(mel_db, POOL)
        self.level = level - np.median(level)
        self.widths = [timebase.frames_in(w, self.fps, 1) for w in WINDOWS_S]

    def _local(self, idx: np.ndarray) -> np.ndarray:
        """Short-window descriptors of frames ``idx`` (contiguous), from a slice wide enough
        that they equal the whole-file values."""
        lo = max(0, idx[0] - max(self.widths))
        hi = min(self.z.shape[1], idx[-1] + 1 + max(self.widths))
        part = slice(lo, hi)
        sums = SideSums(self.z[:, part], self.mfcc[:, part], self.level[part], self.flux[part])
        columns = []
        for width in self.widths:
            columns += list(window_descriptors(sums, width).values())
        columns.append(self.level[part])
        return np.vstack(columns).T[idx - lo]

    def frame_span(self, t0_s: float, search_s: float = SEARCH_S):
        """``(centre, idx)``: the frame of ``t0_s`` and the frames within +-``search_s`` of it
        (those the file has)."""
        centre = timebase.frames_in(t0_s, self.fps)
        half = search_frames(self.fps, search_s)
        return centre, np.arange(max(0, centre - half), min(self.z.shape[1], centre + half + 1))

    def frame_times(self, idx) -> np.ndarray:
        """Seconds of fine frames ``idx``: the centre of their ``POOL`` mel frames."""
        return np.asarray(idx) / self.fps + (POOL - 1) / 2 / (self.fps * POOL)

    def frame_position(self, t_s: float) -> float:
        """The (fractional) fine frame whose centre is at ``t_s``: :meth:`frame_times` inverted."""
        return (t_s - (POOL - 1) / 2 / (self.fps * POOL)) * self.fps

    def rows(self, t0_s: float, search_s: float = SEARCH_S):
        """``(frame_times_s, X)`` for the frames within +-``search_s`` of ``t0_s``."""
        centre, idx = self.frame_span(t0_s, search_s)
        if idx.size == 0:
            return np.zeros(0), np.zeros((0, N_COLUMNS), dtype=np.float32)
        side = self._which_track(centre, idx)
        offset = (idx - centre) / self.fps
        X = np.hstack([self._local(idx), side, offset[:, None], self._gain_fits(centre, idx)])
        return self.frame_times(idx), X.astype(np.float32)

    def _which_track(self, centre: int, idx: np.ndarray) -> np.ndarray:
        """Per frame: resemblance to the outgoing vs the incoming track (all bands, bass only),
        raw and smoothed over 1 s, and how near the smoothed balance is to 0."""
        n = self.z.shape[1]
        near, far = int(REF_NEAR_S * self.fps), int(REF_FAR_S * self.fps)
        out_ref = self.z[:, max(0, centre - far):max(1, centre - near)].mean(axis=1)
        in_ref = self.z[:, min(n - 1, centre + near):min(n, centre + far)].mean(axis=1)
        frames = self.z[:, idx]
        columns = []
        for bands in (slice(None), slice(0, LOW_BANDS)):
            d_out = np.linalg.norm(frames[bands] - out_ref[bands, None], axis=0)
            d_in = np.linalg.norm(frames[bands] - in_ref[bands, None], axis=0)
            s = (d_out - d_in) / (d_out + d_in + 1e-6)  # -1: outgoing track, +1: incoming
            k = max(1, int(self.fps))
            smooth = np.convolve(s, np.ones(k) / k, mode="same")
            columns += [s, smooth]
        columns.append(-np.abs(columns[1]))  # near 0 where the two tracks are balanced
        return np.vstack(columns).T

    def _gain_fits(self, centre: int, idx: np.ndarray) -> np.ndarray:
        """The fitted-gain columns (:mod:`gains`) of frames ``idx``: per band set the incoming
        share and its balances, then the ramp fit with references 5-12 s from the detection,
        then again with references just outside the overlap that fit found."""
        near, far = int(REF_NEAR_S * self.fps), int(REF_FAR_S * self.fps)
        half = int(RAMP_HALF_S * self.fps)
        solo_gap, solo_span = int(SOLO_GAP_S * self.fps), int(SOLO_SPAN_S * self.fps)
        # Every power frame a reference or a ramp window below can touch, computed once: ramp
        # windows reach half beyond the outermost frame, the second references half (a 24-s
        # ramp's half) plus solo_span beyond the best one, and the first ones REF_FAR_S beyond
        # the detection, which is less.
        lo = max(0, idx[0] - half - solo_span)
        hi = min(self.z.shape[1], idx[-1] + 1 + half + solo_span)
        power = pool_frames(10.0 ** (self.mel_db[:, lo * POOL:hi * POOL] / 10.0), POOL)
        idx, centre = idx - lo, centre - lo
        first_refs = self._references(power, (centre - far, centre - near),
                                      (centre + near, centre + far))
        columns, fits = self._share_columns(power, idx, first_refs, half)
        best = int(np.argmin(fits[0][0]))
        start = idx[best] - int(fits[0][1][best] / 2 * self.fps)
        stop = idx[best] + int(fits[0][1][best] / 2 * self.fps)
        solo_refs = self._references(power, (start - solo_span, start - solo_gap),
                                     (stop + solo_gap, stop + solo_span))
        _, solo_fits = self._share_columns(power, idx, solo_refs, half)
        # The first three band sets in their old layout (shares, fits, second fits), then the rest.
        legacy, appended = slice(0, 3), slice(3, None)
        ordered = [c for part in (legacy, appended)
                   for group in (columns, fits, solo_fits) for c in _flat(group[part])]
        return np.vstack(ordered).T

    @staticmethod
    def _references(power, out_span, in_span):
        """Mean power spectra over two spans (clipped to the frames there are, one at least)."""
        n = power.shape[1]
        out_lo = min(max(0, out_span[0]), n - 1)
        in_lo = min(max(0, in_span[0]), n - 1)
        return (power[:, out_lo:max(out_lo + 1, out_span[1])].mean(axis=1),
                power[:, in_lo:max(in_lo + 1, in_span[1])].mean(axis=1))

    def _share_columns(self, power, idx, refs, half):
        """``(share_and_balances, ramp_fits)`` of frames ``idx``, one list per band set."""
        balance_widths = [timebase.frames_in(w, self.fps, 1) for w in BALANCE_S]
        window = slice(max(0, idx[0] - half), idx[-1] + 1 + half)
        columns, fits = [], []
        for bands in BAND_SETS:
            share = gains.incoming_share(power[bands, window], refs[0][bands], refs[1][bands])
            at = idx - window.start
            columns.append([c[at] for c in [share, *gains.side_balances(share, balance_widths)]])
            fits.append(list(gains.ramp_fit(share, at, half, self.fps)))
        return columns, fits


def _flat(lists) -> list:
    return [c for group in lists for c in group]


def search_frames(fps: float, search_s: float = SEARCH_S) -> int:
    """Fine frames each side of a detection that placement scores."""
    return timebase.frames_in(search_s, fps)


def search_width(trees: dict) -> float:
    """The +-seconds around a detection that ``trees`` were trained to score."""
    return float(trees["search_s"]) if "search_s" in trees else LEGACY_SEARCH_S


def scored_frames(local: LocalFrames, times_s, trees: dict, locator=None, draws=()) -> list:
    """Per detection: ``(t0_s, frame_times_s, probs, locator_probs, others)``, the placement
    trees' score of every frame within their search width (``search_width``), with a
    ``locator`` (:class:`boundaries.model.locator.Locator`) its softmax over the same frames
    (else None), and ``others`` the ``(probs, locator_probs)`` of each further placement draw
    in ``draws`` (``(trees, locator)`` pairs; see :func:`frame_scores`)."""
    return [score_one(local, t, trees, locator, draws)[0]
            for t in np.asarray(times_s, dtype=float)]


def score_one(local: LocalFrames, t_s: float, trees: dict, locator=None, draws=()):
    """``(scored, X)``: one detection's entry of :func:`scored_frames` and the rows it scored.
    Every draw scores the same rows: the descriptors and gain fits are computed once."""
    search_s = search_width(trees)
    frame_times, X = local.rows(t_s, search_s)
    probs, located = _draw_scores(local, t_s, X, search_s, trees, locator)
    others = tuple(_draw_scores(local, t_s, X, search_s, *draw) for draw in draws)
    return (float(t_s), frame_times, probs, located, others), X


def _draw_scores(local: LocalFrames, t_s: float, X, search_s: float, trees: dict, locator):
    """``(probs, locator_probs)`` of one placement draw on rows ``X`` (None: no locator)."""
    if not len(X):
        return np.zeros(0), None
    probs = boosted.predict_proba(trees, X)
    if locator is None:
        return probs, None
    centre, idx = local.frame_span(t_s, search_s)
    return probs, locator.probabilities(X, local.z, idx, centre, search_frames(local.fps, search_s))


def smoothed(probs: np.ndarray, width: int = SMOOTH_FRAMES) -> np.ndarray:
    """Running mean over ``width`` frames (over the frames there are, at the ends): one frame's
    score is noisy, the crossover's neighbours score high too (validation F@0.5 +0.01-0.02)."""
    kernel = np.ones(width)
    return (np.convolve(probs, kernel, mode="same")
            / np.convolve(np.ones(len(probs)), kernel, mode="same"))


@dataclass(frozen=True)
class Placing:
    """How :func:`choose` turns the scored frames around a detection into its time.

    - ``sigma_s``: the width of a Gaussian prior around the detection (0: none), which keeps a
      weak placement from dragging a right detection seconds away (``track.placement_sigma_s``);
    - ``locator_weight``: where the locator scored the frames, the score is the trees' times the
      locator's (smoothed alike) to this power (0: the trees alone; ``track.locator_weight``);
    - ``centroid_s``: > 0 places at the score-weighted mean time of the frames within
      +-``centroid_s`` of the best frame instead of that frame, for crossfades, whose score is a
      broad, lopsided hump (``track.placement_centroid_s``; off in the shipped model: it rose on
      most validation comparisons, not all; MODEL_CARD.md, sessions 24-25).
    """

    sigma_s: float = 0.0
    locator_weight: float = 0.0
    centroid_s: float = 0.0

    @classmethod
    def of(cls, track_cfg) -> "Placing":
        return cls(track_cfg.placement_sigma_s, track_cfg.locator_weight,
                   track_cfg.placement_centroid_s)


def frame_scores(t0_s, frame_times, probs, located, placing: Placing, others=()) -> tuple:
    """``(score, prior)`` of one detection's frames: the smoothed trees' score times, where the
    locator scored them and counts, its smoothed probability to ``placing.locator_weight``,
    times the same of each further placement draw in ``others`` (``(probs, locator_probs)``
    pairs, ``track.placement_draws``: meant to count each draw's own errors less; two draws on
    the same data lost on validation, MODEL_CARD.md session 30); and the Gaussian prior around
    ``t0_s`` (1.0 without one). The placed frame maximises their product."""
    score = 1.0
    for draw_probs, draw_located in ((probs, located), *others):
        score = score * smoothed(draw_probs)
        if draw_located is not None and placing.locator_weight > 0:
            score = score * smoothed(draw_located) ** placing.locator_weight
    sigma_s = placing.sigma_s
    prior = np.exp(-0.5 * ((frame_times - t0_s) / sigma_s) ** 2) if sigma_s > 0 else 1.0
    return score, prior


def choose(scored, placing: Placing = Placing()) -> np.ndarray:
    """Each detection's new time: the frame with the highest smoothed score times the prior,
    or the centroid around it, as ``placing`` says."""
    times = []
    for t0, frame_times, probs, *rest in scored:
        if len(probs) == 0:
            times.append(t0)
            continue
        located = rest[0] if rest else None
        others = rest[1] if len(rest) > 1 else ()
        score, prior = frame_scores(t0, frame_times, probs, located, placing, others)
        times.append(_placed_time(frame_times, score * prior, placing.centroid_s))
    return np.array(times)


def _placed_time(frame_times: np.ndarray, score: np.ndarray, centroid_s: float) -> float:
    best = float(frame_times[int(np.argmax(score))])
    if centroid_s <= 0:  # the shipped setting: no mask or sum per detection
        return best
    near = np.abs(frame_times - best) <= centroid_s
    weight = score[near].sum()
    return float(np.sum(frame_times[near] * score[near]) / weight) if weight > 0 else best


def refine(local: LocalFrames, times_s, trees: dict, placing: Placing = Placing(),
           locator=None, draws=()) -> np.ndarray:
    """Each detection moved to its best-scoring frame within +-SEARCH_S (see :func:`choose`);
    ``draws``: further placement stages, ``(trees, locator)`` pairs, whose scores multiply."""
    if placing.locator_weight <= 0:  # not run where they would not count
        locator = None
        draws = [(draw_trees, None) for draw_trees, _ in draws]
    return choose(scored_frames(local, times_s, trees, locator, draws), placing)


def training_rows(local: LocalFrames, times_s, rng, jitter_s: float = JITTER_S):
    """Rows around each true crossover, seen from a detection ``jitter_s`` off at most (the
    detector's error), labelled 1 within ``RADIUS_S`` of the crossover."""
    rows, labels = [], []
    for t in np.asarray(times_s, dtype=float):
        t0 = t + rng.uniform(-jitter_s, jitter_s)
        frame_times, X = local.rows(t0, SEARCH_S)
        rows.append(X)
        labels.append((np.abs(frame_times - t) <= RADIUS_S).astype(np.int8))
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int8)
    return np.vstack(rows), np.concatenate(labels)
