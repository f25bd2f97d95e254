"""Training the track-change detector: embedding, then trees, then thresholds on validation.

    python train.py --config configs/track_change.yaml --data MIXES/train --val-data MIXES/val

1. Log-mel of every training and validation mix (the feature cache: decoded once).
2. The "same track?" embedding, trained contrastively on the training mixes. Where the mixes'
   ``manifest.json`` (data_scripts/make_mixes.py) is found, pairs come from the stretches where one
   source track plays alone, and a track that recurs in several mixes gives its two excerpts from
   two of them (other sections, other speeds); without a manifest, from the stretches between
   annotated boundaries, shrunk by 15 s each side. With ``track.crossfit`` each training folder
   is a fold of other music and gets the embedding trained on the other folds, so the trees
   below learn from distances as blurred as on new music; detection averages over all of them.
3. One row per descriptor frame (descriptors + embedding distances), labelled 1 within 1 s of a
   crossover; ``HistGradientBoostingClassifier`` fits them (its own early stopping on 10 % of
   rows). A second stage is fitted on the rows plus +-30 s of the first stage's out-of-fold
   probabilities (two folds of files); with ``track.overlap_context`` also on the out-of-fold
   probabilities of overlap trees, fitted on the rows labelled over each crossfade's whole
   overlap (from the mixes' manifest). All are exported to arrays. With
   ``track.sequence_steps``, the sequence stage (a dilated CNN) learns from the same
   out-of-fold probabilities (and the descriptor columns, ``track.sequence_descriptors``); on a
   CPU with ``data.jobs`` > 1 in a worker process, while the last trees fit.
4. Peak threshold and minimum track length tuned on the validation mixes (F at
   ``eval.tune_window``), never on test; then the plateau level that moves each peak to the
   middle of its hump, if one raises that F.
5. The placement stage: trees on fine frames around every training crossover (seen from a
   detection up to ``placement.JITTER_S`` off) and, with ``track.locator_steps``, the locators
   (CNNs over the whole +-7 s window, :mod:`boundaries.train.locator`): on a CPU with
   ``data.jobs`` > 1 they train in worker processes from the start, beside steps 2-4, and only
   the placement's tuning waits for them. The prior width and the locator's weight are tuned on
   validation (mean of F@0.5 and F@3). Placement is kept only if
   it raises that mean on validation, the locator only if its tuned weight is above 0.
6. With ``track.chooser``, the placement chooser (:mod:`boundaries.train.chooser`): fitted on the
   detections of the validation mixes and of ``track.chooser_dirs``, kept only if it raises
   that mean with each folder's detections picked by a chooser fitted on the other folders.
7. With ``track.expected_f``, the expected-F decoding (:mod:`boundaries.detection.expected_f`):
   each validation candidate's strength against whether its placed time is a crossover (and
   with ``track.expected_f_fine`` whether it is within 0.5 s of one); with ``track.rescorer``
   the candidate re-scorer (:mod:`boundaries.detection.rescorer`) on the same candidates.

The small networks (embedding, sequence stage, locators) train on ``train.device`` (a GPU when
``auto`` finds one, under bf16 autocast with ``train.amp``); the trees always on the CPU.
"""

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from boundaries.data import annotations
from boundaries.detection import expected_f, inference, placement, rescorer
from boundaries.model import (
    boosted,
    embedding,
    embedding_features,
    overlap,
    sequence,
    track_detector,
)
from boundaries.model.locator import Locator
from boundaries.model.track_detector import (
    RowColumns,
    TrackChangeDetector,
    row_features,
    row_targets,
)
from boundaries.score import evaluation, metrics
from boundaries.train import chooser as chooser_stage

logger = logging.getLogger(__name__)

THRESHOLDS = np.round(np.r_[0.01, 0.02, 0.03, np.arange(0.05, 0.96, 0.025)], 3)
# candidates for peaks.smooth_s. Only 0 by default: on the shipped detector 1-5 s (3 s won) raised
# validation F@3 and lowered F@0.5, the objective +0.001 (MODEL_CARD.md, session 17)
SMOOTH_S = (0.0,)
SOLO_MARGIN_S = 15.0  # without a manifest: how far from a boundary an excerpt must stay


def embedding_spans(data, fps_net: float, positives: str = "track") -> list:
    """Solo spans per training file, in network frames (see the module docstring).

    ``positives``: ``track`` pairs excerpts of one source track from anywhere in any mix (the
    make_mixes.py manifest says which track plays where); ``stretch`` pairs excerpts of one
    stretch between two annotated boundaries only, every file its own group (what any annotated
    folder supports; the shipped model was trained this way, see MODEL_CARD.md)."""
    if positives == "stretch":
        return [_spans_between_boundaries(track, fps_net) for track in data]
    spans = []
    for track, record in zip(data, annotations.mix_records(t.audio_path for t in data)):
        if record is not None:
            spans.append(embedding.solo_spans(record, fps_net))
        else:
            spans.append(_spans_between_boundaries(track, fps_net))
    return spans


def _spans_between_boundaries(track, fps_net: float) -> list:
    """Each stretch between annotated boundaries is one "track", kept away from its ends by
    ``SOLO_MARGIN_S`` (a quarter of the stretch when shorter) so fades are left out."""
    edges = np.r_[0.0, track.times_s, track.duration_s]
    spans = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        margin = min(SOLO_MARGIN_S, (b - a) / 4)
        lo, hi = a + margin * (i > 0), b - margin * (i < len(edges) - 2)
        spans.append((f"{track.audio_path}#{i}", str(track.audio_path), int(lo * fps_net),
                      int(hi * fps_net)))
    return spans


def torch_device(cfg) -> dict:
    """Where the small networks (embedding, sequence stage, locators) train: ``train.device``
    (``auto``: a CUDA GPU when one is visible), with bf16 autocast there when ``train.amp``.
    The trees always fit on the CPU."""
    device = inference.resolve_device(cfg.train.device)
    return {"device": device, "amp": cfg.train.amp and device.type == "cuda"}


def fit_embedding(train_data, cfg, log=print):
    """A "same track?" embedding trained contrastively on ``train_data``."""
    fps = cfg.fps
    clips = [embedding_features.network_frames(t.mel) for t in train_data]
    spans = embedding_spans(train_data, fps / embedding_features.TIME_POOL,
                            cfg.track.embed_positives)
    sampler = embedding.PairSampler(clips, spans, seed=cfg.train.seed)
    log(f"embedding: {len(sampler.by_source)} tracks in {len(sampler.groups)} groups")
    model = embedding.train_embedding(sampler, steps=cfg.track.embed_steps,
                                      n_mels=cfg.features.n_mels, lr=cfg.track.embed_lr,
                                      width=cfg.track.embed_width, seed=cfg.train.seed, log=log,
                                      **torch_device(cfg))
    return embedding_features.EmbeddingNetwork.from_module(model)


def reused_embeddings(path: str, log=print) -> list:
    """The embedding(s) of the track-change checkpoint ``path`` (``track.embedding_from``)."""
    from boundaries.model.checkpoints import load_model

    detector, _, _ = load_model(path)
    if not hasattr(detector, "networks"):
        from boundaries.errors import BoundariesError

        raise BoundariesError(f"track.embedding_from={path}: not a track-change checkpoint (it "
                              "holds no embedding)")
    log(f"embedding: {len(detector.networks)} reused from {path}")
    return detector.networks


def fit_embeddings(train_data, cfg, log=print):
    """``(networks, network of each training file)``: one embedding for every file, or with
    ``track.crossfit`` one per training folder, trained on the other folders' files, for the
    files of that folder (so the trees learn from distances as blurred as on new music).

    Embeddings reused from a checkpoint (``track.embedding_from``) have heard none of these
    files, or all of them; with several (a cross-fitted checkpoint) the files take turns."""
    if cfg.track.embedding_from:
        networks = reused_embeddings(cfg.track.embedding_from, log)
        return networks, [networks[i % len(networks)] for i in range(len(train_data))]
    if not cfg.track.crossfit:
        network = fit_embedding(train_data, cfg, log)
        return [network], [network] * len(train_data)
    folds = crossfit_folds(train_data, cfg)
    networks = []
    for fold in range(folds.max() + 1):
        others = [track for track, f in zip(train_data, folds) if f != fold]
        log(f"embedding {fold + 1} of {folds.max() + 1}: trained on the {len(others)} files "
            f"outside fold {fold + 1} ({np.sum(folds == fold)} files)")
        networks.append(fit_embedding(others, cfg, log))
    return networks, [networks[f] for f in folds]


def crossfit_folds(train_data, cfg) -> np.ndarray:
    """The fold of each training file: the index of the training folder holding it
    (``data.train_dir``, then ``data.extra_train_dirs``). Folders whose ``manifest.json``
    (data_scripts/make_mixes.py) share a source track are refused: that music would be
    in-sample for the embedding of the other fold."""
    from boundaries.errors import ConfigError

    folders = [Path(d).expanduser().resolve()
               for d in (cfg.data.train_dir, *cfg.data.extra_train_dirs) if d]
    if len(folders) < 2:
        raise ConfigError("config key 'track.crossfit': needs two or more training folders "
                          "of different music (data.train_dir and data.extra_train_dirs), one "
                          "per fold")
    _refuse_shared_sources(folders)
    folds = [next((i for i, folder in enumerate(folders)
                   if track.audio_path.resolve().is_relative_to(folder)), -1)
             for track in train_data]
    missing = [t.audio_path for t, f in zip(train_data, folds) if f < 0]
    if missing:
        raise ConfigError(f"{missing[0]}: a training file outside every training folder; "
                          "track.crossfit needs each file inside one fold's folder")
    counts = np.bincount(folds, minlength=len(folders))
    if (counts == 0).any():
        raise ConfigError(f"{folders[int(np.argmin(counts))]}: no training file in this fold; "
                          "give every training folder annotated mixes")
    return np.asarray(folds)


def _refuse_shared_sources(folders) -> None:
    from boundaries.errors import ConfigError

    seen = {}
    for folder in folders:
        manifest = folder.parent / "manifest.json"
        if not manifest.is_file():
            logger.warning("%s: no manifest.json beside it, so track.crossfit cannot check that "
                           "the folds hold different music", folder)
            continue
        sources = set(json.loads(manifest.read_text()).get("split", {}).get("train_sources", []))
        for other, other_sources in seen.items():
            shared = sources & other_sources
            if shared:
                raise ConfigError(f"{folder} and {other}: {len(shared)} source tracks in both "
                                  f"(e.g. {min(shared)}); track.crossfit needs folds of "
                                  "different music (make_mixes.py --test-groups the other "
                                  "fold's packages)")
        seen[folder] = sources


def table(data, networks, cfg):
    """Stacked rows and labels of many files, and the row count of each, with the columns and
    label radius of ``cfg.track``; ``networks`` is one embedding, or one per file
    (``fit_embeddings``)."""
    if not isinstance(networks, (list, tuple)):
        networks = [networks] * len(data)
    columns = RowColumns.of(cfg.track)
    rows, labels, counts = [], [], []
    for track, network in zip(data, networks):
        X, names = row_features(track.mel, network, fps=cfg.fps, columns=columns)
        rows.append(X)
        labels.append(row_targets(track.times_s, len(X), fps=cfg.fps,
                                  radius_s=cfg.track.target_radius_s))
        counts.append(len(X))
    return np.vstack(rows), np.concatenate(labels), counts, names


def fit_placement(train_data, fps, cfg, log=print, draw: int = 0) -> dict:
    """Trees of the placement stage, on frames around every training crossover; ``draw`` k > 0
    is another placement draw (``track.placement_draws``): other jitters, rows and trees, from
    seed ``train.seed + k``."""
    seed = cfg.train.seed + draw
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for track in train_data:
        X, y = placement.training_rows(placement.LocalFrames(track.mel, fps), track.times_s, rng)
        if len(X):
            rows.append(X)
            labels.append(y)
    trees = boosted.export_trees(fit_trees(np.vstack(rows), np.concatenate(labels), cfg, log,
                                           seed=seed))
    return {**trees, "search_s": np.array(placement.SEARCH_S)}


def start_locators(train_data, fps, cfg, log=print):
    """The placement locators, on views around every training crossover, started: on a CPU with
    ``data.jobs`` > 1 they train in worker processes while the caller fits the other stages
    (:class:`~boundaries.train.locator.LocatorTraining`; ``.result()`` gives them). None when
    ``track.locator_steps`` is 0."""
    if not cfg.track.locator_steps:
        return None
    from boundaries.train.locator import LocatorTraining, gather_views

    tracks = [(track.mel, track.times_s) for track in train_data]
    # every placement draw's networks, in draw order (placement_stages splits them)
    networks = cfg.track.locator_seeds * cfg.track.placement_draws
    training = LocatorTraining(steps=cfg.track.locator_steps, seed=cfg.train.seed,
                               networks=networks, jobs=cfg.data.jobs, log=log,
                               **torch_device(cfg))
    training.start(lambda folder: gather_views(tracks, fps, cfg.train.seed, folder,
                                               jobs=cfg.data.jobs))
    log(f"locator: {len(training.views.target)} views of "
        f"{sum(len(t.times_s) for t in train_data)} crossovers")
    return training


def placement_stages(placement_trees: list, locators, cfg) -> tuple:
    """``(trees, locator, further draws)`` of the placement: one ``placement_trees`` entry per
    draw, and ``locators`` (:class:`Locator` of every draw's networks in draw order, or None)
    split into ``track.locator_seeds`` networks per draw."""
    per_draw = cfg.track.locator_seeds
    split = [None] * len(placement_trees)
    if locators is not None:
        states = locators.networks  # a one-network Locator stores a dict, as before
        split = [Locator(states[k * per_draw:(k + 1) * per_draw])
                 for k in range(len(placement_trees))]
    return placement_trees[0], split[0], list(zip(placement_trees[1:], split[1:]))


def fit_trees(X, y, cfg, log=print, seed=None):
    """scikit-learn's histogram gradient boosting with ``track``'s settings, seeded with
    ``seed`` (``train.seed`` where None)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    seed = cfg.train.seed if seed is None else seed
    if len(X) > cfg.track.max_train_rows:
        keep = np.sort(np.random.default_rng(seed).choice(
            len(X), cfg.track.max_train_rows, replace=False))
        X, y = X[keep], y[keep]
    t = cfg.track
    model = HistGradientBoostingClassifier(
        max_iter=t.max_iter, learning_rate=t.learning_rate, max_leaf_nodes=t.max_leaf_nodes,
        min_samples_leaf=t.min_samples_leaf, l2_regularization=1.0, early_stopping=True,
        validation_fraction=0.1, n_iter_no_change=20, random_state=seed)
    start = time.perf_counter()
    model.fit(X, y)
    log(f"trees: {model.n_iter_} iterations on {len(X)} rows ({y.mean():.2%} positive) in "
        f"{time.perf_counter() - start:.0f} s")
    return model


def out_of_fold(X, y, counts, cfg, log=print) -> np.ndarray:
    """The first stage's probability of every row from trees fitted without its file (two folds
    of files): what the later stages learn from, as noisy as on music the first stage never
    met."""
    bounds = np.cumsum([0, *counts])
    files = np.arange(len(counts))
    oof = np.empty(len(X))
    for fold in (0, 1):
        held = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in files[fold::2]])
        mask = np.ones(len(X), dtype=bool)
        mask[held] = False
        model = fit_trees(X[mask], y[mask], cfg, log)
        oof[held] = model.predict_proba(X[held])[:, 1]
    return oof


def fit_stacked(X, y, counts, cfg, log=print, oof=None, inside=None):
    """``(trees, context_trees, oof)``: the first stage on all rows, the second on the rows plus
    the first stage's out-of-fold probabilities ``oof`` (:func:`out_of_fold` where not given)
    and, where given, the overlap trees' out-of-fold ``inside`` (:func:`fit_overlap`)."""
    if oof is None:
        oof = out_of_fold(X, y, counts, cfg, log)
    bounds = np.cumsum([0, *counts])
    stacked = np.vstack([track_detector.stacked_rows(
        X[a:b], oof[a:b], None if inside is None else inside[a:b], fps=cfg.fps)
        for a, b in zip(bounds[:-1], bounds[1:])])
    trees = boosted.export_trees(fit_trees(X, y, cfg, log))
    return trees, boosted.export_trees(fit_trees(stacked, y, cfg, log)), oof


def overlap_transitions(train_data, cfg) -> "list | None":
    """Each training mix's transitions from its make_mixes.py manifest with
    ``track.overlap_context`` (None without it); one clear error for a mix that none lists."""
    from boundaries.errors import BoundariesError

    if not cfg.track.overlap_context:
        return None
    records = annotations.mix_records(t.audio_path for t in train_data)
    for track, record in zip(train_data, records):
        if record is None:
            raise BoundariesError(
                f"{track.audio_path}: track.overlap_context needs each training mix's overlaps, "
                "and no manifest.json one folder above it lists this file; train on mixes "
                "made by data_scripts/make_mixes.py or set track.overlap_context=false")
    return [record["transitions"] for record in records]


def fit_overlap(transitions, X, counts, cfg, log=print):
    """``(overlap_trees, out-of-fold P(inside))``: trees on the rows labelled over every
    crossfade's whole overlap (:mod:`boundaries.model.overlap`), and their probability of each
    row from trees fitted without its file (as the stacked stage's other columns are)."""
    y = np.concatenate([overlap.inside_labels(t, n, fps=cfg.fps)
                        for t, n in zip(transitions, counts)])
    log(f"overlap trees: {y.mean():.1%} of rows inside an overlap")
    inside = out_of_fold(X, y, counts, cfg, log)
    return boosted.export_trees(fit_trees(X, y, cfg, log)), inside


def start_sequence(oof, y, counts, cfg, log=print, X=None, names=None):
    """The sequence stage's training on the first stage's out-of-fold probabilities per file
    (and, with ``track.sequence_descriptors``, the descriptor columns of the rows ``X``,
    standardised over all training rows), started (:class:`~boundaries.train.sequence.
    SequenceTraining`: in a worker process on a CPU with ``data.jobs`` > 1); its ``.result()``
    is the network. None when ``track.sequence_steps`` is 0."""
    if not cfg.track.sequence_steps:
        return None
    from boundaries.train.sequence import SequenceTraining

    scaling = None
    if cfg.track.sequence_descriptors:
        columns = sequence.descriptor_columns(names)
        values = X[:, columns].astype(np.float64)
        scaling = (columns, np.nanmean(values, axis=0).astype(np.float32),
                   (np.nanstd(values, axis=0) + 1e-6).astype(np.float32))
        del values
    bounds = np.cumsum([0, *counts])
    files = list(zip(bounds[:-1], bounds[1:]))
    inputs = [sequence.network_input(oof[a:b], X[a:b] if scaling else None, scaling)
              for a, b in files]
    stored = dict(zip(sequence.SCALING_KEYS, scaling)) if scaling else {}
    return SequenceTraining(inputs, [y[a:b] for a, b in files], stored=stored,
                            jobs=cfg.data.jobs, log=log, steps=cfg.track.sequence_steps,
                            seed=cfg.train.seed, **torch_device(cfg))


def fit_sequence(oof, y, counts, cfg, log=print, X=None, names=None):
    """The sequence stage trained (:func:`start_sequence`, waited for); None when
    ``track.sequence_steps`` is 0."""
    training = start_sequence(oof, y, counts, cfg, log, X, names)
    return training.result() if training else None


def tune_decoding(val_data, activations, cfg, smooth_candidates_s=SMOOTH_S):
    """``cfg`` with the smoothing, peak threshold and minimum track length that maximise mean
    validation F at ``eval.tune_window``, then the plateau level
    (:func:`peaks.plateau_centres`) if one raises it."""
    best = (-1.0, None)
    for smooth_s in smooth_candidates_s:
        # smoothed once per candidate, not once per threshold: the grid below sees the curves
        curves = [inference.smoothed(a, dataclasses.replace(cfg.peaks, smooth_s=smooth_s),
                                     cfg.fps) for a in activations]
        for min_track_s in cfg.track.min_track_lengths_s:
            peaks_cfg = dataclasses.replace(cfg.peaks, min_distance_s=min_track_s,
                                            max_window_s=min_track_s / 2, plateau_level=0.0,
                                            subtract_local_mean=False, smooth_s=0.0)
            trial = cfg.replace(peaks=peaks_cfg)
            for threshold in THRESHOLDS:
                f = _mean_f(val_data, curves, trial, threshold)
                if f > best[0] + 1e-12:
                    best = (f, dataclasses.replace(peaks_cfg, threshold=float(threshold),
                                                   smooth_s=smooth_s))
    for level in cfg.track.plateau_levels:  # then where on its hump each peak goes
        peaks_cfg = dataclasses.replace(best[1], plateau_level=level)
        f = _mean_f(val_data, activations, cfg.replace(peaks=peaks_cfg))
        if f > best[0] + 1e-12:
            best = (f, peaks_cfg)
    return cfg.replace(peaks=best[1])


def _mean_f(val_data, activations, cfg, threshold=None) -> float:
    """Mean validation F at ``eval.tune_window`` of the peaks ``cfg`` decodes."""
    return float(np.mean([metrics.boundary_scores(
        t.times_s, inference.pick(a, cfg.peaks, cfg.fps, threshold)[0], t.duration_s,
        cfg.eval.tune_window, trim=cfg.eval.trim)["f"] for t, a in zip(val_data, activations)]))


def train_track_detector(cfg, train_data, val_data, log=print):
    """Fit the whole detector; returns ``(detector, tuned_cfg, validation_result)``. The
    locators train beside the other stages (worker processes), which wait for them only to tune
    the placement."""
    fps = cfg.fps
    chooser_stage.check_folders(cfg)  # a typo fails now, not after the hour of training
    transitions = overlap_transitions(train_data, cfg)  # so does a mix without a manifest
    locators = start_locators(train_data, fps, cfg, log)
    with locators.beside() if locators else contextlib.nullcontext():
        networks, network_of_file = fit_embeddings(train_data, cfg, log)
        X, y, counts, names = table(train_data, network_of_file, cfg)
        oof = out_of_fold(X, y, counts, cfg, log)
        sequence_training = start_sequence(oof, y, counts, cfg, log, X, names)
        with sequence_training.beside() if sequence_training else contextlib.nullcontext():
            overlap_trees, inside = (fit_overlap(transitions, X, counts, cfg, log)
                                     if transitions is not None else (None, None))
            trees, context_trees, _ = fit_stacked(X, y, counts, cfg, log, oof, inside)
            del X, y, oof, inside
            placement_trees = [fit_placement(train_data, fps, cfg, log, draw)
                               for draw in range(cfg.track.placement_draws)]
        detector = TrackChangeDetector(
            networks, trees, fps, context_trees=context_trees, overlap_trees=overlap_trees,
            columns=RowColumns.of(cfg.track),
            sequence=sequence_training.result() if sequence_training else None,
            placing=placement.Placing(centroid_s=cfg.track.placement_centroid_s))
        tuned, activations, unplaced = tune_peaks(detector, val_data, cfg, log)
    detector.placement, detector.locator, detector.placement_draws = placement_stages(
        placement_trees, locators.result() if locators else None, cfg)
    tuned = tune_placement_stage(detector, val_data, activations, tuned, unplaced, log)
    if cfg.track.chooser:
        chooser_stage.fit_chooser_stage(detector, val_data, tuned, log)
    if cfg.track.expected_f:
        fit_expected_f(detector, val_data, activations, tuned, log)
    return detector, tuned, tuned_result(detector, val_data, tuned, log, activations)


def fit_expected_f(detector, val_data, activations, cfg, log=print) -> None:
    """``detector.expected_f`` fitted on the validation mixes: every candidate peak (above
    ``expected_f.CANDIDATE_THRESHOLD``), placed as detection places it, is a hit when within
    ``expected_f.LABEL_S`` of a crossover; the coverage is the share of crossovers with one."""
    detector.expected_f = detector.rescorer = None  # stay so when there is nothing to fit
    strengths, hits, fine_hits, features, covered, total = [], [], [], [], 0, 0
    for track, acts in zip(val_data, activations):
        times, found = inference.detections(acts, cfg, threshold=expected_f.CANDIDATE_THRESHOLD)
        if cfg.track.rescorer:
            features.append(detector.candidate_features(track.mel, acts, times, found))
        placed_s = detector.refine(track.mel, times, inference.smoothed(acts, cfg.peaks, cfg.fps),
                                   found)
        hit, near = expected_f.hits_and_coverage(track.times_s, placed_s)
        strengths.append(found)
        hits.append(hit)
        fine_hits.append(expected_f.hits_and_coverage(track.times_s, placed_s,
                                                      expected_f.FINE_LABEL_S)[0])
        covered, total = covered + near, total + len(track.times_s)
    if not total or not sum(len(h) for h in hits):
        log("expected-F decoding: no crossover or no candidate in the validation files; left out")
        return
    hits, fine_hits = np.concatenate(hits), np.concatenate(fine_hits)
    detector.expected_f = expected_f.fit(np.concatenate(strengths), hits, max(covered, 1) / total,
                                         fine_hits if cfg.track.expected_f_fine else None)
    fine = f", {fine_hits.mean():.1%} within 0.5 s" if cfg.track.expected_f_fine else ""
    log(f"expected-F decoding: {len(hits)} candidates, {hits.mean():.1%} hits{fine}, coverage "
        f"{covered / total:.3f}")
    if cfg.track.rescorer:
        detector.rescorer = rescorer.fit(np.vstack(features), hits, fine_hits)
        log(f"candidate re-scorer: fitted on {len(hits)} candidates")


def tuned_result(detector, val_data, cfg, log=print, activations=None):
    """Validation scores of a tuned detector, placement included; with ``recall_by_kind`` where
    the validation mixes have a make_mixes.py manifest (a shipping decision should see a
    transition kind that a better mean F hides). ``activations``: the detector's on
    ``val_data``, where the tuning has them already."""
    activations = activations or [None] * len(val_data)
    detections = [inference.boundaries_for(detector, t.mel, cfg, "cpu", acts=a)
                  for t, a in zip(val_data, activations)]
    result = evaluation.score(val_data, [a for a, _, _ in detections], cfg,
                              estimates=[(times, s) for _, times, s in detections])
    by_kind = evaluation.recall_by_kind(val_data, [times for _, times, _ in detections])
    if by_kind:
        result["recall_by_kind"] = by_kind
        log("validation " + evaluation.format_recall_by_kind(by_kind))
    return result


def tune_track_detector(detector, val_data, cfg, log=print):
    """``(cfg, activations)`` with the threshold, minimum track length, frame threshold and
    placement prior tuned on ``val_data`` (and with ``track.expected_f`` the expected-F decoding
    fitted there); the placement stage is switched off (``detector.placement = None``) when it
    does not raise mean F@0.5/F@3 there."""
    tuned, activations, unplaced = tune_peaks(detector, val_data, cfg, log)
    tuned = tune_placement_stage(detector, val_data, activations, tuned, unplaced, log)
    if cfg.track.expected_f:
        fit_expected_f(detector, val_data, activations, tuned, log)
    return tuned, activations


def tune_peaks(detector, val_data, cfg, log=print):
    """``(cfg, activations, result)``: the decoding and frame threshold tuned on ``val_data``,
    the first stages' validation activations and their scores without placement."""
    activations = [detector.frame_activations(t.mel) for t in val_data]
    tuned = tune_decoding(val_data, activations, cfg)
    frame = evaluation.tune_frame_threshold(val_data, activations, tuned)
    tuned = tuned.replace(eval=dataclasses.replace(tuned.eval, frame_threshold=frame))
    result = evaluation.score(val_data, activations, tuned)
    log("validation without placement: " + _f_line(result))
    return tuned, activations, result


def tune_placement_stage(detector, val_data, activations, cfg, unplaced, log=print):
    """``cfg`` with the placement prior and locator weight tuned on ``val_data``; the placement
    stage is switched off when it does not raise the objective over ``unplaced`` (the scores
    without it), the locator when its weight is 0."""
    if detector.placement is None:
        return cfg
    placing, placed = tune_placement(detector, val_data, activations, cfg)
    log(f"validation with placement (prior {placing.sigma_s:g} s, locator weight "
        f"{placing.locator_weight:g}): " + _f_line(placed))
    if _objective(placed) <= _objective(unplaced):
        log("placement does not help on validation: left out")
        detector.placement = detector.locator = None
        detector.placement_draws = []
        return cfg
    detector.placing = placing
    if placing.locator_weight == 0:  # it lost on validation: not stored
        detector.locator = None
        detector.placement_draws = [(trees, None) for trees, _ in detector.placement_draws]
    return cfg.replace(track=dataclasses.replace(cfg.track, placement_sigma_s=placing.sigma_s,
                                                 locator_weight=placing.locator_weight))


def tune_placement(detector, val_data, activations, cfg):
    """``(placing, result)``: the :class:`placement.Placing` whose prior (and, with a locator,
    its weight) among ``track.placement_sigmas_s`` (``track.locator_weights``) maximise mean
    validation F at 0.5 s and 3 s (placement can trade one for the other; the centroid stays
    ``track.placement_centroid_s``), and its scores."""
    scored = []
    locator = getattr(detector, "locator", None)
    for track, acts in zip(val_data, activations):
        times, _ = inference.pick(acts, cfg.peaks, cfg.fps)
        local = placement.LocalFrames(track.mel, detector.fps)
        scored.append(placement.scored_frames(local, times, detector.placement, locator,
                                              getattr(detector, "placement_draws", ())))
    best = None
    for weight in cfg.track.locator_weights if locator is not None else (0.0,):
        for sigma in cfg.track.placement_sigmas_s:
            placing = placement.Placing(sigma, weight, cfg.track.placement_centroid_s)
            estimates = [(placement.choose(s, placing), np.zeros(len(s))) for s in scored]
            result = evaluation.score(val_data, activations, cfg, estimates=estimates)
            if best is None or _objective(result) > _objective(best[1]) + 1e-12:
                best = (placing, result)
    return best


def _objective(result) -> float:
    return (result["boundary"]["0.5"]["f"] + result["boundary"]["3.0"]["f"]) / 2


def _f_line(result) -> str:
    b = result["boundary"]
    return f"F@0.5 {b['0.5']['f']:.3f}, F@3 {b['3.0']['f']:.3f}"
