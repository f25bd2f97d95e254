"""The track-change detector: descriptors + a "same track?" embedding -> boosted trees.

For every descriptor frame (~4.3 per second) it builds one row: the multi-scale before/after
descriptors of :mod:`descriptors` and the left-vs-right embedding distances of :mod:`embedding`
(each also divided by its file median); gradient-boosted trees (:mod:`boosted`) turn the row into
P(a crossover within ``track.target_radius_s``). A second set of trees sees that probability over
+-30 s around each frame (stacking, Wolpert 1992; fitted on out-of-fold probabilities): whether
this is the strongest change of its neighbourhood, which a single row cannot know (with
``track.overlap_context`` it also reads where two tracks play at once, :mod:`overlap`); with a
sequence stage (:mod:`sequence`: a dilated CNN over +-1 minute of those probabilities), the two
second stages are averaged. The result is interpolated to mel frames, so it goes through the
package's peak picking, metrics and outputs like any other activation; the placement stage
(:mod:`placement`) then moves each peak to its instant.
"""

from dataclasses import dataclass

import numpy as np

from boundaries.detection import chooser, placement
from boundaries.detection import rescorer as rescoring
from boundaries.detection.expected_f import ExpectedF
from boundaries.detection.placement import Placing
from boundaries.model import boosted, overlap
from boundaries.model import embedding_features as embedding
from boundaries.model.locator import Locator
from boundaries.model.sequence import SequenceNetwork
from boundaries.signal import descriptors
from boundaries.signal.filters import running_max
from boundaries.signal.rhythm import rhythm_distances

EMBED_WINDOWS_S = (4.0, 8.0, 16.0, 32.0)
KIND = "track_change"


@dataclass(frozen=True)
class RowColumns:
    """The optional columns of the rows, as ``cfg.track`` sets them (a checkpoint's config says
    which its trees were fitted on): ``recurrence`` adds :func:`embedding.recurrence_features`,
    ``rhythm`` the onsets' before/after periodicity, ``rhythm_gap_s`` its gapped windows too."""

    recurrence: bool = False
    rhythm: bool = False
    rhythm_gap_s: float = 0.0

    @classmethod
    def of(cls, track_cfg) -> "RowColumns":
        return cls(track_cfg.recurrence, track_cfg.rhythm, track_cfg.rhythm_gap_s)


def row_features(mel_db: np.ndarray, network, *, fps: float,
                 columns: RowColumns = RowColumns()):
    """``(X [n_rows, n_features], names)`` for one file's log-mel ``[n_mels, n_frames]``
    (``network``: an :class:`embedding.EmbeddingNetwork`)."""
    X, names = descriptor_columns(mel_db, fps=fps, columns=columns)
    return with_embedding_columns(X, names, mel_db, network, fps=fps, columns=columns)


def descriptor_columns(mel_db: np.ndarray, *, fps: float, columns: RowColumns = RowColumns()):
    """The rows' columns that no embedding touches: :mod:`descriptors`, then :mod:`rhythm`'s."""
    X, names = descriptors.compute_descriptors(mel_db, fps=fps)
    if not columns.rhythm:
        return X, names
    R, rhythm_names = rhythm_distances(mel_db, fps=fps, gap_s=columns.rhythm_gap_s)
    return np.hstack([X, R]), names + rhythm_names


def with_embedding_columns(X: np.ndarray, names: list, mel_db: np.ndarray, network, *,
                           fps: float, columns: RowColumns = RowColumns()):
    """The descriptor rows ``X`` with ``network``'s distance (and recurrence) columns added:
    the part of :func:`row_features` that differs between cross-fitted embeddings."""
    proj = embedding.position_projections(network, mel_db)
    dist = embedding.embedding_distances(proj, n_out=len(X), out_stride_frames=descriptors.POOL,
                                         windows_s=EMBED_WINDOWS_S, fps=fps)
    dist_names = [f"embed@{w:g}" for w in EMBED_WINDOWS_S]
    dist, dist_names = descriptors.relative_to_median(dist.T, dist_names)
    blocks, names = [X, dist.T], names + dist_names
    if columns.recurrence:
        blocks.append(embedding.recurrence_features(
            proj, n_out=len(X), out_stride_frames=descriptors.POOL, fps=fps))
        names += list(embedding.RECURRENCE_NAMES)
    return np.hstack(blocks).astype(np.float32), names


def row_targets(times_s, n_rows: int, *, fps: float, radius_s: float = 1.0):
    """1 for descriptor frames whose centre lies within ``radius_s`` of a crossover, else 0."""
    centres_s = descriptors.row_centres(n_rows) / fps
    labels = np.zeros(n_rows, dtype=np.int8)
    for t in np.asarray(times_s, dtype=float):
        labels[np.abs(centres_s - t) <= radius_s] = 1
    return labels


CONTEXT_OFFSETS = (1, 2, 4, 8, 16, 32, 64, 128)  # rows: 0.23 s to 30 s each side
CONTEXT_MAX_WIDTHS = (8, 32, 128)


def context_features(probs: np.ndarray) -> np.ndarray:
    """``[n_rows, 23]``: a row's probability, its neighbours' at +-``CONTEXT_OFFSETS`` rows
    (0 beyond the file), and the neighbourhood maxima with the row's share of them."""
    n = len(probs)
    columns = [probs]
    for offset in CONTEXT_OFFSETS:
        before, after = np.zeros(n), np.zeros(n)
        if offset < n:
            before[offset:], after[:-offset] = probs[:-offset], probs[offset:]
        columns += [before, after]
    for width in CONTEXT_MAX_WIDTHS:
        local_max = running_max(probs, width, width, fill=0.0)
        columns += [local_max, probs / (local_max + 1e-6)]
    return np.vstack(columns).T


def stacked_rows(X: np.ndarray, probs: np.ndarray, inside: "np.ndarray | None" = None, *,
                 fps: "float | None" = None) -> np.ndarray:
    """The second stage's rows: ``X``, the first stage's context and, with the overlap trees'
    probabilities ``inside`` (``track.overlap_context``), :func:`overlap.overlap_columns`."""
    blocks = [X, context_features(probs)]
    if inside is not None:
        blocks.append(overlap.overlap_columns(inside, fps=fps))
    return np.hstack(blocks).astype(np.float32)


def rows_to_frames(row_probs: np.ndarray, n_frames: int) -> np.ndarray:
    """Descriptor-frame probabilities -> one value per mel frame (linear between row centres)."""
    centres = descriptors.row_centres(len(row_probs))
    return np.interp(np.arange(n_frames), centres, row_probs).astype(np.float32)


def combined_probabilities(stages: dict) -> np.ndarray:
    """What the detector outputs from :meth:`TrackChangeDetector.stage_probabilities`: the
    second stages averaged, or the first stage when there are none."""
    second = [stages[k] for k in ("stacked", "sequence") if k in stages]
    return np.mean(second, axis=0) if second else stages["first"]


class TrackChangeDetector:
    """Log-mel -> per-frame crossover probability; what ``boundaries detect`` runs.

    Parameters
    ----------
    network : embedding_features.EmbeddingNetwork, the "same track?" embedding (numpy), or a
        list of them (``track.crossfit``: one per fold), whose probabilities are averaged
    trees : dict of arrays from :func:`boosted.export_trees`
    fps : float, mel frames per second
    """

    def __init__(self, network, trees: dict, fps: float, placement: "dict | None" = None,
                 context_trees: "dict | None" = None, columns: RowColumns = RowColumns(),
                 sequence=None, locator=None, placing: Placing = Placing(), chooser=None,
                 expected_f=None, placement_draws=(), overlap_trees=None, rescorer=None):
        self.networks = list(network) if isinstance(network, (list, tuple)) else [network]
        self.network = self.networks[0]  # the one embedding, or the first fold's
        self.trees, self.fps = trees, fps
        self.sequence = sequence  # the sequence stage (a SequenceNetwork), or None
        self.columns = columns  # the rows' optional columns (cfg.track)
        self.context_trees = context_trees  # the stacked second stage, or None
        # the overlap trees (P(two tracks playing), overlap.py) whose columns it reads, or None
        self.overlap_trees = overlap_trees
        self.placement = placement  # trees of the placement stage (placement.py), or None
        self.locator = locator  # the placement locator (model/locator.py), or None
        # further placement stages, (trees, locator or None) each, whose scores multiply the
        # first's (track.placement_draws)
        self.placement_draws = list(placement_draws)
        self.placing = placing  # prior, locator weight and centroid of the placement stage
        self.chooser = chooser  # picks among placements from the hump's edges, or None
        self.expected_f = expected_f  # how many peaks each file keeps (expected_f.py), or None
        self.rescorer = rescorer  # its per-candidate probabilities (rescorer.py), or None
        self._last_rows = (None, None, None)  # (log-mel, its first rows, their first stage)
        self.context_frames = 0

    def row_probabilities(self, mel_db: np.ndarray) -> np.ndarray:
        base, names = descriptor_columns(mel_db, fps=self.fps, columns=self.columns)
        rows = [with_embedding_columns(base, names, mel_db, network, fps=self.fps,
                                       columns=self.columns)[0] for network in self.networks]
        stages = self.stage_probabilities(rows)
        # the re-scorer reads the rows at each candidate: kept for this mel (the one held, so
        # the identity test cannot match another array at a reused address)
        self._last_rows = (mel_db, rows[0], stages["first"])
        return combined_probabilities(stages)

    def candidate_features(self, mel_db, acts, times_s, strengths) -> np.ndarray:
        """:func:`rescorer.candidate_features` of candidate peaks, from ``acts`` (this
        ``mel_db``'s activations) and the rows at the candidates."""
        held, rows, first = self._last_rows
        if held is not mel_db:
            self.row_probabilities(mel_db)
            _, rows, first = self._last_rows
        return rescoring.candidate_features(acts, times_s, strengths, rows, first, self.fps)

    def candidate_probabilities(self, mel_db, acts, times_s, strengths) -> "tuple | None":
        """The re-scorer's ``(P(hit), P(fine hit))`` of each candidate peak; None without one."""
        if self.rescorer is None:
            return None
        return self.rescorer.probabilities(self.candidate_features(mel_db, acts, times_s,
                                                                   strengths))

    def probabilities_of_rows(self, rows: list) -> np.ndarray:
        """The stages after the rows, from one row matrix per embedding."""
        return combined_probabilities(self.stage_probabilities(rows))

    def stage_probabilities(self, rows: list) -> dict:
        """``{"first", "stacked", "sequence"}``: each stage's probabilities (the second stages
        when present) from one row matrix per embedding. Cross-fitted embeddings: the trees saw
        each training mix through the one embedding that had not heard it; new music is seen
        through every one, and each stage's trees averaged."""
        probs = np.mean([boosted.predict_proba(self.trees, X) for X in rows], axis=0)
        stages = {"first": probs}
        if self.context_trees is not None:
            stages["stacked"] = np.mean([boosted.predict_proba(self.context_trees,
                                                               self._stacked_rows(X, probs))
                                         for X in rows], axis=0)
        if self.sequence is not None:  # it reads descriptor columns only: alike in every set
            stages["sequence"] = self.sequence.probabilities(probs, rows[0])
        return stages

    def _stacked_rows(self, X: np.ndarray, probs: np.ndarray) -> np.ndarray:
        if self.overlap_trees is None:
            return stacked_rows(X, probs)
        inside = boosted.predict_proba(self.overlap_trees, X)
        return stacked_rows(X, probs, inside, fps=self.fps)

    def frame_activations(self, mel_db: np.ndarray) -> np.ndarray:
        """``[n_frames]`` float32 in [0, 1]."""
        return rows_to_frames(self.row_probabilities(mel_db), mel_db.shape[1])

    def refine(self, mel_db: np.ndarray, times_s, curve=None, strengths=None) -> np.ndarray:
        """Detections moved to their instants by the placement stage. With a chooser, and the
        ``curve`` the peaks were picked on and their ``strengths``, each is placed from its
        hump's edges too and the chooser picks (:mod:`chooser`)."""
        if self.placement is None or len(times_s) == 0:
            return np.asarray(times_s, dtype=float)
        local = placement.LocalFrames(mel_db, self.fps)
        if self.chooser is not None and curve is not None:
            return chooser.refine(local, curve, times_s, strengths, self.fps, self.placement,
                                  self.locator, self.placing, self.chooser)
        return placement.refine(local, times_s, self.placement, self.placing, self.locator,
                                self.placement_draws)

    def to(self, device):  # numpy throughout: CPU always
        return self

    def eval(self):
        return self

    def state(self) -> dict:
        """Arrays and plain data (``save_checkpoint`` stores the arrays as tensors)."""
        state = {"kind": KIND, "embedding": self.network.state, "trees": self.trees}
        if len(self.networks) > 1:
            state["fold_embeddings"] = [network.state for network in self.networks[1:]]
        for key in ("placement", "context_trees", "overlap_trees"):
            if getattr(self, key) is not None:
                state[key] = getattr(self, key)
        for key in ("sequence", "locator", "chooser", "expected_f", "rescorer"):
            if getattr(self, key) is not None:
                state[key] = getattr(self, key).state
        if self.placement_draws:
            state["placement_draws"] = [
                {"trees": trees, **({"locator": locator.state} if locator is not None else {})}
                for trees, locator in self.placement_draws]
        return state

    @classmethod
    def from_state(cls, state: dict, fps: float, n_mels: int,
                   columns: RowColumns = RowColumns(),
                   placing: Placing = Placing()) -> "TrackChangeDetector":
        """From :meth:`state`'s arrays (numpy, or tensors from ``torch.load``)."""
        network = [embedding.EmbeddingNetwork(_arrays(values), n_mels)
                   for values in [state["embedding"], *state.get("fold_embeddings", [])]]
        optional = {k: _arrays(state[k]) for k in ("placement", "context_trees", "overlap_trees")
                    if k in state}
        if "sequence" in state:
            optional["sequence"] = SequenceNetwork(_arrays(state["sequence"]))
        if "locator" in state:  # one network's arrays, or a list (Locator reads both)
            optional["locator"] = Locator(state["locator"])
        if "chooser" in state:
            optional["chooser"] = chooser.Chooser(state["chooser"])
        if "expected_f" in state:
            optional["expected_f"] = ExpectedF(_arrays(state["expected_f"]))
        if "rescorer" in state:
            optional["rescorer"] = rescoring.Rescorer(
                {k: _arrays(state["rescorer"][k]) for k in ("hit", "fine")})
        optional["placement_draws"] = [
            (_arrays(draw["trees"]), Locator(draw["locator"]) if "locator" in draw else None)
            for draw in state.get("placement_draws", [])]
        return cls(network, _arrays(state["trees"]), fps, columns=columns, placing=placing,
                   **optional)


def _arrays(values: dict) -> dict:
    return {k: np.asarray(v) for k, v in values.items()}


def from_checkpoint_state(state: dict, cfg) -> TrackChangeDetector:
    fps = cfg.fps
    return TrackChangeDetector.from_state(state, fps, cfg.features.n_mels,
                                          RowColumns.of(cfg.track), Placing.of(cfg.track))
