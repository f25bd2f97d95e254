"""Typed configuration: YAML files in ``configs/`` map one-to-one onto frozen dataclasses.

``load_config(["configs/base.yaml", "configs/experiments/focal.yaml"], ["train.lr=3e-4"])``
merges the files in order, applies ``section.key=value`` overrides (values parsed by
``yaml.safe_load``, so ``3e-4`` is a float and ``[1, 20]`` a list), then builds the dataclasses.
Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the key.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from boundaries.errors import ConfigError

MAX_SECONDS = 86400.0  # any duration setting (a key ending in _s) beyond a day is a typo


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a config never needs them, and nested aliases expand
    exponentially (the "billion laughs" value ran to a MemoryError)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in boundaries configs")
        return super().compose_node(parent, index)


def safe_yaml(text: str):
    """``yaml.safe_load`` without aliases (see :class:`_PlainLoader`)."""
    return yaml.load(text, Loader=_PlainLoader)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': {message}")


@dataclass(frozen=True)
class AudioConfig:
    sr: int = 22050  # every file is resampled to this rate (Hz), mono
    extensions: tuple = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

    def __post_init__(self):
        _check(8000 <= self.sr <= 192000, "audio.sr", f"must be in 8000..192000, got {self.sr}")


@dataclass(frozen=True)
class FeatureConfig:
    n_fft: int = 2048  # STFT window (samples at audio.sr)
    hop_length: int = 512  # frame step: 512 at 22.05 kHz = 23.2 ms, ~43 frames/s
    n_mels: int = 80  # mel bands (Ullrich et al. 2014 use 80)
    fmin: float = 27.5  # lowest mel edge (Hz)
    fmax: float = 11025.0  # highest mel edge (Hz); at most audio.sr / 2

    def __post_init__(self):
        _check(self.hop_length > 0, "features.hop_length", "must be > 0")
        _check(self.n_fft >= self.hop_length and self.n_fft % 2 == 0, "features.n_fft",
               "must be even and >= hop_length")
        _check(self.n_mels > 0, "features.n_mels", "must be > 0")
        _check(0 <= self.fmin < self.fmax, "features.fmin", "must satisfy 0 <= fmin < fmax")


@dataclass(frozen=True)
class LabelConfig:
    mode: str = "soft"  # soft: Gaussian targets | window: positives within radius | binary
    sigma_s: float = 1.0  # Gaussian width (seconds): target (soft) or loss weight (window)
    radius_s: float = 3.0  # frames further than this from a boundary are negative (<= 10 s)

    def __post_init__(self):
        _check(self.mode in {"soft", "window", "binary"}, "labels.mode",
               f"must be soft, window or binary, got {self.mode!r}")
        _check(self.sigma_s > 0, "labels.sigma_s", "must be > 0")
        _check(0 <= self.radius_s <= 10, "labels.radius_s", "must be in 0..10 seconds")


@dataclass(frozen=True)
class SyntheticConfig:
    n_clips: int = 64  # clips in the default data set
    clip_s: float = 30.0  # clip length (seconds)
    seed: int = 0  # the whole data set is a function of this seed

    def __post_init__(self):
        _check(self.n_clips >= 2, "data.synthetic.n_clips", "must be >= 2")
        _check(self.clip_s >= 10, "data.synthetic.clip_s", "must be >= 10 seconds")


@dataclass(frozen=True)
class DataConfig:
    train_dir: str = ""  # folder of audio + annotations; empty = the generated default data
    # more training folders beside train_dir (e.g. a second make_mixes.py run of other seeds)
    extra_train_dirs: tuple[str, ...] = ()
    val_dir: str = ""  # held-out folder; empty = split train_dir by group
    extra_val_dirs: tuple[str, ...] = ()  # more validation folders beside val_dir
    val_fraction: float = 0.2  # share of groups held out when val_dir is empty
    split_seed: int = 0
    group_by: str = "file"  # file | parent (folder): nothing of a group feeds both splits
    cache_dir: str = "~/.cache/boundaries"  # features and the default data live here
    jobs: int = 2  # processes: decoding, features, the locators (views too), the sequence stage
    excerpt_s: float = 30.0  # training excerpt length (seconds)
    excerpt_hop_s: float = 10.0  # step between excerpt starts (seconds)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self):
        _check(0 < self.val_fraction < 1, "data.val_fraction", "must be in (0, 1)")
        _check(self.group_by in {"file", "parent"}, "data.group_by", "must be file or parent")
        _check(self.jobs >= 1, "data.jobs", "must be >= 1")
        _check(self.excerpt_s > 0 and self.excerpt_hop_s > 0, "data.excerpt_s", "must be > 0")


@dataclass(frozen=True)
class SamplingConfig:
    strategy: str = "none"  # none | oversample | undersample | batch_share
    positive_share: float = 0.5  # share of boundary-holding excerpts the strategy aims for

    def __post_init__(self):
        _check(self.strategy in {"none", "oversample", "undersample", "batch_share"},
               "sampling.strategy", f"unknown strategy {self.strategy!r}")
        _check(0 < self.positive_share < 1, "sampling.positive_share", "must be in (0, 1)")


@dataclass(frozen=True)
class ModelConfig:
    conv_channels: tuple = (8, 16)  # 2-D front end: channels of each conv + freq-pool stage
    freq_pool: int = 4  # max-pool factor over mel bands after each front-end conv
    channels: int = 64  # width of the temporal (1-D) stack
    dilations: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # one residual block each
    kernel_size: int = 3  # temporal kernel of the residual blocks
    dropout: float = 0.1
    # z-score each mel band over the whole file before the network: removes the spectral colour
    # of a recording (mastering, genre) so the network sees change, as Foote's novelty does
    per_file_norm: bool = False

    def __post_init__(self):
        _check(len(self.conv_channels) >= 1, "model.conv_channels", "needs at least one stage")
        _check(self.kernel_size % 2 == 1, "model.kernel_size", "must be odd")
        _check(0 <= self.dropout < 1, "model.dropout", "must be in [0, 1)")


@dataclass(frozen=True)
class TrackConfig:
    """The track-change detector (``kind: track_change``): descriptors and a contrastive "same
    track?" embedding feeding gradient-boosted trees (boundaries/model/track_detector.py)."""
    kind: str = "cnn"  # cnn: the CNN of models.py; track_change: the detector described here
    embed_steps: int = 1500  # InfoNCE steps of the embedding (48 pairs each)
    embed_lr: float = 2e-3
    embed_width: int = 16  # channels of the embedding's first layer (x2 per layer)
    # positive pairs of the embedding: "track" (one source track anywhere, from the mixes'
    # manifest) or "stretch" (one stretch between annotated boundaries; groups are files)
    embed_positives: str = "track"
    # a track-change checkpoint whose embedding is reused instead of trained (fits only the
    # trees: minutes instead of half an hour, e.g. on your own mixes)
    embedding_from: str = ""
    # the first stage's rows are labelled 1 within this many seconds of a crossover
    target_radius_s: float = 1.0
    max_iter: int = 300  # boosting iterations (early stopping on a held-out 10 % of rows)
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    max_train_rows: int = 2_000_000  # rows kept for the trees (uniform subsample beyond this)
    # placement: width of the Gaussian prior around each detection (0 = none); tuned on
    # validation at the end of training among placement_sigmas_s
    placement_sigma_s: float = 0.0
    placement_sigmas_s: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    # placement: 0 = each detection moves to its best-scoring frame; > 0 = to the score-weighted
    # mean time of the frames within +-this many seconds of that frame (crossfades' scores are
    # lopsided humps; 2 s was not taken in sessions 24-25, MODEL_CARD.md)
    placement_centroid_s: float = 0.0
    # the placement locator (model/locator.py): training steps of a CNN that reads the +-7 s
    # around a detection at once (0 = none), and its exponent in the placement score (tuned on
    # validation at the end of training among locator_weights; 0 = placement by the trees
    # alone). One candidate each pins them: tuned on one validation set, weight and prior
    # overfitted it (MODEL_CARD.md, session 18)
    locator_steps: int = 0
    locator_weight: float = 0.0
    locator_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    # the placement chooser (detection/chooser.py): place each detection from its hump's edges
    # too and let a logistic model pick, fitted at the end of training on the validation mixes'
    # detections and those of chooser_dirs (more held-out folders, read for this alone); kept
    # only if it raises mean F@0.5/F@3 there with each folder's chooser fitted on the others
    # (folders of different packages: folders that share music let an overfitted one pass)
    chooser: bool = False
    chooser_dirs: tuple[str, ...] = ()
    # expected-F decoding (detection/expected_f.py): fit a strength -> P(crossover within 3 s) map
    # on the validation candidates; detection then keeps, per file, the strongest peaks that
    # maximise the expected F (a threshold or a track count given by the user replaces it)
    expected_f: bool = False
    # ... and a second map, to P(placed within 0.5 s): each file then keeps the peaks that
    # maximise the mean of its expected F@3 and F@0.5, the figure evaluation reports
    expected_f_fine: bool = False
    # ... and the candidate re-scorer (detection/rescorer.py): two small boosted classifiers,
    # fitted on the same candidates, read each candidate's neighbourhood and row, and their
    # probabilities replace the strength maps' (a section change's peak can be as strong)
    rescorer: bool = False
    # decoding candidates tuned on validation at the end of training: the minimum track length
    # (peaks.min_distance_s) and the level of a hump whose middle a peak moves to
    # (peaks.plateau_level; 0 unless one raises validation F@3, so one value still leaves the
    # choice of none). One minimum length pins it: tuned on the 300 validation mixes alone, a
    # longer minimum lost on another set (MODEL_CARD.md, session 21)
    min_track_lengths_s: tuple[float, ...] = (4.0, 6.0, 10.0, 15.0)
    plateau_levels: tuple[float, ...] = (0.4, 0.5, 0.6)
    # locators trained (seeds train.seed + i, the same views) whose probabilities are averaged:
    # one training's figures vary (MODEL_CARD.md, session 18)
    locator_seeds: int = 1
    # independently trained placement stages (each its trees and locator_seeds locators; draw k
    # with seeds train.seed + k for its trees' jitter and rows, train.seed + k * locator_seeds + i
    # for its locators, on the first draw's views) whose smoothed scores multiply. Two lost on
    # the validation judges (objective -0.0095 on 480 mixes; MODEL_CARD.md, session 30)
    placement_draws: int = 1
    # long-range recurrence features: does the music after a time sound like anything earlier in
    # the file (and before it like anything later)? A new track never played before
    recurrence: bool = False
    # before/after rhythm: the cosine distance between the onsets' autocorrelation (lags up to
    # 2 s) left and right of each time over 4-32 s (signal/rhythm.py): a crossover changes the
    # tempo and groove, a section change rarely does
    rhythm: bool = False
    # with track.rhythm: also compare windows that end/start this many seconds from each time,
    # past the middle of a long crossfade (signal/rhythm.py); 0 = adjacent windows only
    rhythm_gap_s: float = 0.0
    # the overlap trees (model/overlap.py): rows labelled over a crossfade's whole overlap (from
    # make_mixes.py's manifest), whose probability and its mass left and right of each row the
    # stacked trees read too: the middle of a long fade, which the first stage cannot see
    overlap_context: bool = False
    # the sequence stage (model/sequence.py): training steps of a dilated CNN over +-1 minute
    # of first-stage probabilities, averaged with the stacked trees; 0 = no sequence stage
    sequence_steps: int = 0
    # the sequence stage also reads the rows' descriptor columns (standardised), not only the
    # first stage's probability (model/sequence.py; not shipped, MODEL_CARD.md session 10)
    sequence_descriptors: bool = False
    # cross-fitted embeddings: each training folder (data.train_dir, data.extra_train_dirs) is one
    # fold of different music; one embedding per fold is trained on the other folds, the trees
    # see each mix through the embedding that never heard it, and detection averages over all
    # of them (in-sample distances are sharper than on new music; configs/track_change_crossfit
    # .yaml; gained in package-grouped cross-validation, not in its product run: not shipped,
    # MODEL_CARD.md session 12)
    crossfit: bool = False

    def __post_init__(self):
        _check(self.kind in ("cnn", "track_change"), "track.kind", "must be cnn or track_change")
        _check(self.sequence_steps >= 0, "track.sequence_steps", "must be >= 0")
        _check(self.embed_positives in ("track", "stretch"), "track.embed_positives",
               "must be track or stretch")
        _check(self.embed_steps >= 1, "track.embed_steps", "must be >= 1")
        _check(self.embed_width >= 1, "track.embed_width", "must be >= 1")
        _check(self.max_iter >= 1, "track.max_iter", "must be >= 1")
        _check(self.placement_sigma_s >= 0, "track.placement_sigma_s", "must be >= 0")
        _check(self.placement_centroid_s >= 0, "track.placement_centroid_s", "must be >= 0")
        _check(self.locator_steps >= 0, "track.locator_steps", "must be >= 0")
        _check(self.locator_weight >= 0, "track.locator_weight", "must be >= 0")
        _check(len(self.min_track_lengths_s) > 0 and min(self.min_track_lengths_s) > 0,
               "track.min_track_lengths_s", "must be a non-empty list of seconds > 0")
        _check(len(self.plateau_levels) > 0 and 0 < min(self.plateau_levels)
               and max(self.plateau_levels) < 1, "track.plateau_levels",
               "must be a non-empty list of levels in (0, 1)")
        for key in ("placement_sigmas_s", "locator_weights"):
            values = getattr(self, key)
            _check(len(values) > 0 and min(values) >= 0, f"track.{key}",
                   "must be a non-empty list of numbers >= 0")
        _check(self.locator_seeds >= 1, "track.locator_seeds", "must be >= 1")
        _check(self.placement_draws >= 1, "track.placement_draws", "must be >= 1")
        _check(self.placement_draws == 1 or not self.chooser, "track.placement_draws",
               "must be 1 with track.chooser: true (the chooser reads one placement stage)")
        _check(self.expected_f or not self.expected_f_fine, "track.expected_f_fine",
               "needs track.expected_f: true")
        _check(self.expected_f_fine or not self.rescorer, "track.rescorer",
               "needs track.expected_f_fine: true (it gives both probabilities)")
        _check(self.rhythm_gap_s >= 0, "track.rhythm_gap_s", "must be >= 0")
        _check(self.target_radius_s > 0, "track.target_radius_s", "must be > 0")
        _check(self.rhythm or not self.rhythm_gap_s, "track.rhythm_gap_s",
               "needs track.rhythm: true")


@dataclass(frozen=True)
class LossConfig:
    kind: str = "weighted_bce"  # bce | weighted_bce | focal
    class_weight: typing.Any = "balanced"  # 'balanced' (scikit-learn) or [w_negative, w_positive]
    alpha: typing.Optional[float] = None  # focal: weight of the POSITIVE class (torchvision: 0.25)
    gamma: float = 2.0  # focal: focusing exponent; 0 gives (alpha-weighted) BCE

    def __post_init__(self):
        _check(self.kind in {"bce", "weighted_bce", "focal"}, "loss.kind",
               f"must be bce, weighted_bce or focal, got {self.kind!r}")
        cw = self.class_weight
        ok = cw == "balanced" or (isinstance(cw, (list, tuple)) and len(cw) == 2
                                  and all(isinstance(w, (int, float)) and w > 0 for w in cw))
        _check(ok, "loss.class_weight", f"must be 'balanced' or [w0, w1] > 0, got {cw!r}")
        _check(self.alpha is None or 0 < self.alpha < 1, "loss.alpha", "must be in (0, 1)")
        _check(self.gamma >= 0, "loss.gamma", "must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 25
    batch_size: int = 8  # excerpts per batch
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision (bf16) on CUDA; ignored on CPU
    num_workers: int = 0  # DataLoader workers (features are cached in memory already)
    select_metric: str = "pr_auc"  # validation metric for best checkpoint and early stopping
    patience: int = 8  # epochs without improvement before stopping; 0 = never stop early
    threads: int = 1  # torch CPU threads per process

    def __post_init__(self):
        _check(self.epochs >= 1, "train.epochs", "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(0 < self.lr <= 10, "train.lr", "must be in (0, 10]")
        _check(self.select_metric in {"pr_auc", "roc_auc", "loss", "f_3", "f_0.5"},
               "train.select_metric", "must be pr_auc, roc_auc, loss, f_3 or f_0.5")
        _check(self.device == "auto" or self.device.split(":")[0] in {"cpu", "cuda"},
               "train.device", f"must be auto, cpu or cuda[:N], got {self.device!r}")


@dataclass(frozen=True)
class PeakConfig:
    threshold: float = 0.1  # activation minus local mean must exceed this; tuned on validation
    max_window_s: float = 6.0  # a peak is the maximum within +-this (Ullrich et al. 2014)
    avg_before_s: float = 12.0  # local mean taken over [t - before, t + after]
    avg_after_s: float = 6.0
    min_distance_s: float = 0.0  # extra minimum gap between peaks
    # Share of Foote's checkerboard novelty mixed into the CNN's activation before peak picking
    # (0 = CNN only); tuned on validation with the thresholds. It sees long-range timbre change,
    # the CNN local cues: on real mixes the blend beats both (MODEL_CARD.md).
    novelty_weight: float = 0.0
    novelty_kernel_s: float = 32.0  # Foote kernel width (seconds)
    # false: the threshold applies to the activation itself (calibrated probabilities, such as
    # the track-change detector's), not to its height above the local mean
    subtract_local_mean: bool = True
    # Move each peak to the middle of its hump (the frames at or above this share of its
    # height; 0 = off): a long crossfade's highest frame is often near one end. Tuned on
    # validation for the track-change detector.
    plateau_level: float = 0.0
    # Peaks are picked on the activation's mean over +-this many seconds (0 = off): the mass of
    # probability near a time, not its highest frame, so a long crossfade's broad low hump
    # competes with a cut's narrow high one. Tuned on validation for the track-change detector.
    smooth_s: float = 0.0

    def __post_init__(self):
        _check(self.threshold >= 0, "peaks.threshold", "must be >= 0")
        _check(0 <= self.smooth_s <= 30, "peaks.smooth_s", "must be in [0, 30] seconds")
        _check(0 <= self.plateau_level < 1, "peaks.plateau_level", "must be in [0, 1)")
        _check(0 <= self.novelty_weight <= 1, "peaks.novelty_weight", "must be in [0, 1]")
        _check(self.novelty_kernel_s > 0, "peaks.novelty_kernel_s", "must be > 0")
        _check(self.max_window_s > 0, "peaks.max_window_s", "must be > 0")
        _check(self.avg_before_s >= 0 and self.avg_after_s > 0, "peaks.avg_after_s", "must be > 0")


@dataclass(frozen=True)
class EvalConfig:
    windows: tuple = (0.5, 3.0)  # hit-rate tolerances (seconds), as mir_eval.segment.detection
    frame_tolerance_s: float = 0.5  # a frame is positive within this of a reference boundary
    frame_threshold: float = 0.5  # probability threshold for frame P/R/F1; tuned on validation
    beta: float = 1.0  # F-beta for frame and boundary scores
    tune_window: float = 3.0  # the peak threshold is tuned for this tolerance
    trim: bool = True  # score interior boundaries only (0 and the file end are not boundaries)
    chunk_s: float = 120.0  # inference chunk core length (seconds)
    context_s: float = 15.0  # context each side of a chunk; >= half the receptive field

    def __post_init__(self):
        _check(all(w > 0 for w in self.windows), "eval.windows", "must be > 0")
        _check(self.frame_tolerance_s >= 0, "eval.frame_tolerance_s", "must be >= 0")
        _check(0 < self.frame_threshold < 1, "eval.frame_threshold", "must be in (0, 1)")
        _check(self.chunk_s > 0 and self.context_s >= 0, "eval.chunk_s", "must be > 0")


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    peaks: PeakConfig = field(default_factory=PeakConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        _check(self.features.fmax <= self.audio.sr / 2, "features.fmax",
               f"must be <= audio.sr / 2 = {self.audio.sr / 2}")

    @property
    def fps(self) -> float:
        """Frames per second of the features (sr / hop_length)."""
        from boundaries.signal import timebase

        return timebase.fps(self.audio.sr, self.features.hop_length)

    def to_dict(self) -> dict:
        """Plain nested dict (tuples as lists), safe for YAML, JSON and checkpoints."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **sections) -> "Config":
        """Copy with whole sections replaced, e.g. ``cfg.replace(peaks=new_peaks)``."""
        return dataclasses.replace(self, **sections)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value, annotation, key: str):
    """Check ``value`` against a field annotation; lists become tuples for tuple fields."""
    if annotation is typing.Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is tuple or origin is tuple:
        _check(isinstance(value, (list, tuple)), key, f"must be a list, got {value!r}")
        args = typing.get_args(annotation)  # tuple[float, ...]: each item typed too
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0], key) for item in value)
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if annotation is float and isinstance(value, float):
        _check(value == value and abs(value) != float("inf"), key, f"must be finite, got {value}")
        _check(not key.endswith("_s") or value <= MAX_SECONDS, key,
               f"{value:g} s is more than a day; give seconds")
        return value
    if annotation is bool:
        _check(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    _check(isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)),
           key, f"must be {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys (nanoGPT style)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix or 'root'}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key '{full}' (known: {', '.join(fields)})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value or {}, prefix=f"{full}.")
        else:
            kwargs[key] = _coerce(value, hint, full)
    return cls(**kwargs)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the --config path") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = safe_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of sections")
    return data


def parse_override(text: str) -> dict:
    """``'train.lr=3e-4'`` -> ``{'train': {'lr': 0.0003}}`` (value typed by yaml.safe_load)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. train.lr=3e-4")
    if len(raw) > 10_000:
        raise ConfigError(f"override {key.strip()}: a value of {len(raw)} characters; put long "
                          "settings in a --config file")
    try:
        value = safe_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        if "aliases" in str(exc):
            raise ConfigError(f"override {key.strip()}: YAML aliases are not allowed; write the "
                              "value out") from None
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads '3e-4' as a string; a number is meant
        try:
            value = float(value)
        except ValueError:
            pass
    return nest_dotted({key.strip(): value})


def merge_dicts(*dicts: dict) -> dict:
    out: dict = {}
    for d in dicts:
        out = _merge(out, d)
    return out


def load_config(paths=(), overrides=(), *, base=None, layers=()) -> Config:
    """The one layering law of every entry point, later wins: ``base`` (a :class:`Config`, e.g. a
    checkpoint's), YAML files in order, mappings (``layers``; dotted keys allowed, e.g. a study
    row's ``{"loss.kind": "focal"}``), then ``section.key=value`` overrides."""
    data = merge_dicts(base.to_dict() if base is not None else {},
                       *(_read_yaml(p) for p in paths), *(nest_dotted(d) for d in layers),
                       *(parse_override(o) for o in overrides))
    return config_from_dict(data)


def nest_dotted(flat: dict) -> dict:
    """``{"loss.kind": "bce", "train": {...}}`` -> ``{"loss": {"kind": "bce"}, "train": {...}}``."""
    out = {}
    for key, value in flat.items():
        for part in reversed(str(key).split(".")):
            value = {part: value}
        out = _merge(out, value)
    return out


def config_from_dict(data: dict) -> Config:
    """Build a :class:`Config`; a ``ValueError`` from validation becomes a :class:`ConfigError`."""
    try:
        return from_dict(Config, data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config: {exc}") from None


def apply_overrides(cfg: Config, overrides=(), frozen_sections=("audio", "features", "model")):
    """``cfg`` with ``section.key=value`` overrides; sections a trained model depends on are
    refused, since changing them would silently break the checkpoint."""
    extra = merge_dicts(*(parse_override(o) for o in overrides))
    for section in frozen_sections:
        if section in extra:
            raise ConfigError(f"config section '{section}' is fixed by the checkpoint and cannot "
                              "be overridden here; retrain to change it")
    return load_config(base=cfg, overrides=overrides)


def save_config(cfg: Config, path) -> None:
    """Write the effective config as YAML, atomically."""
    from boundaries.atomic import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
