"""What users import: :func:`detect`, :class:`Detector` and :class:`Result`.

``Detector`` is the one object that turns audio into boundaries: ``boundaries detect`` (folders,
torchrun shards), ``evaluate.py``, ``boundaries tune`` and the accuracy benchmark all go through
it. Seconds at the edges, frames inside: a ``Result`` speaks seconds, the activations come with
their ``fps``.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boundaries.detection import expected_f
from boundaries.errors import BoundariesError, DecodingError, printable

logger = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "default.pt"


@dataclass(frozen=True, eq=False)
class Result:
    """Boundaries found in one recording.

    Attributes
    ----------
    boundaries_s : np.ndarray [shape=(n_boundaries,), dtype=float64]
        Boundary times in seconds, sorted.
    strengths : np.ndarray [shape=(n_boundaries,)]
        Each boundary's strength: the activation there (the shipped detector's probability of a
        crossover), or its height above the local mean for detectors decoded that way;
        ``to_dict()["strength_meaning"]`` says which.
    activations : np.ndarray [shape=(n_frames,), dtype=float32]
        The detector's per-frame activation, in [0, 1]; frame ``i`` is at ``i / fps`` s.
    fps : float
        Frames per second of ``activations`` (sr / hop_length, about 43.07).
    duration_s : float
        Length of the audio in seconds.
    model_id : str
        sha256 of the checkpoint file that made the result.
    source : str or None
        The audio file's path as given, or None for an array.
    settings : dict
        The decoding actually used (threshold, n_tracks) and the peak-picking settings.
    """
    boundaries_s: np.ndarray
    strengths: np.ndarray
    activations: np.ndarray
    fps: float
    duration_s: float
    model_id: str
    source: str | None = None
    settings: dict = field(default_factory=dict)
    mel: np.ndarray | None = field(default=None, repr=False)  # kept only with keep_mel=True
    sr: int = 22050  # the rate the features were computed at (fps = sr / hop_length)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (times and strengths rounded to the millisecond / 1e-4)."""
        from boundaries import __version__

        return {"source": printable(self.source) if self.source else None,
                "source_absolute": printable(Path(self.source).resolve()) if self.source
                else None,
                "boundaries_s": [round(float(t), 3) for t in self.boundaries_s],
                "strengths": [round(float(s), 4) for s in self.strengths],
                "strength_meaning": strength_meaning(self.settings),
                "duration_s": round(float(self.duration_s), 3), "fps": self.fps,
                "sr": self.sr,
                "model_id": self.model_id, "boundaries_version": __version__,
                "settings": self.settings}

    def save(self, path, fmt: str | None = None) -> Path:
        """Write the boundaries atomically: research formats ``txt``, ``lab``, ``jams``,
        ``json``; DJ formats ``cue`` (a CUE sheet), ``audacity`` (a label track), ``tracklist``
        (``mm:ss  Track n``) and ``rekordbox`` (an XML collection with a memory cue at each
        crossover). ``fmt`` defaults to what the name asks for (``.jams``, ``.cue``,
        ``.audacity.txt``, ``.tracklist.txt``, ``.xml``: rekordbox). Returns the path written."""
        from boundaries.atomic import write_text
        from boundaries.data.annotations import format_boundaries

        path = Path(path)
        fmt = fmt or _format_of(path.name)
        if fmt not in SAVE_FORMATS:
            raise ValueError(f"{path}: format {fmt!r} unknown; choose from "
                             f"{', '.join(SAVE_FORMATS)}")
        if fmt in ("txt", "lab", "jams", "json"):
            text = format_boundaries(self.boundaries_s, fmt, duration_s=self.duration_s,
                                     strengths=self.strengths, extra=self.to_dict())
        else:
            text = self.export_text(fmt)
        write_text(path, text)
        return path

    def sonify(self, path, audio=None, sr: int = 22050) -> Path:
        """The audio with a click at each boundary (``mir_eval.sonify.clicks``), written as Ogg
        Vorbis (``.ogg``) or wav, atomically: listen to where the crossovers fell. ``audio``
        (mono samples at ``sr``) defaults to the decoded source file."""
        import mir_eval

        from boundaries.signal.audio import load_audio, write_audio

        if audio is None:
            if not self.source:
                raise ValueError("sonify: this result came from an array; pass audio= and sr=")
            audio = load_audio(self.source, sr=sr)
        audio = np.asarray(audio, dtype=np.float32)
        clicks = mir_eval.sonify.clicks(np.asarray(self.boundaries_s), fs=sr, length=len(audio))
        mixed = 0.8 * audio / max(1.0, float(np.max(np.abs(audio)))) + 0.5 * clicks
        path = Path(path)
        kind = "ogg" if path.suffix.lower() in (".ogg", ".oga") else "wav"
        write_audio(path, np.clip(mixed, -1, 1).astype(np.float32), sr, kind)
        return path

    def export_text(self, fmt: str) -> str:
        """The text of a DJ export (``cue``, ``audacity``, ``tracklist``, ``rekordbox``)."""
        from boundaries import __version__
        from boundaries.detection import exports

        name = Path(self.source).name if self.source else "audio.wav"
        if fmt == "cue":
            return exports.cue_sheet(self.boundaries_s, printable(name),
                                     f"boundaries {__version__} (model {self.model_id[:12]})")
        if fmt == "audacity":
            return exports.audacity_labels(self.boundaries_s)
        if fmt == "tracklist":
            return exports.tracklist(self.boundaries_s)
        if fmt == "rekordbox":
            return exports.rekordbox_xml([(self.source or name, self.duration_s,
                                           self.boundaries_s)], __version__)
        raise ValueError(f"unknown export format {fmt!r}")

    def plot(self, path, reference_s=()) -> Path:
        """A PNG of the activation with the boundaries (and the log-mel above it when the result
        kept it: ``detect(..., keep_mel=True)``)."""
        from boundaries.score.plots import plot_activation

        calibrated = not self.settings.get("peaks", {}).get("subtract_local_mean", True)
        plot_activation(path, self.mel, self.activations, fps=self.fps, est_s=self.boundaries_s,
                        ref_s=reference_s, title=printable(Path(self.source).name)
                        if self.source else "",
                        threshold=self.settings.get("threshold") if calibrated else None)
        return Path(path)


def _format_of(name: str) -> str:
    """The format a file name asks for: ``x.audacity.txt`` and ``x.tracklist.txt`` before
    ``x.txt``, ``x.xml`` is rekordbox, else the suffix."""
    name = name.lower()
    for ending, fmt in ((".audacity.txt", "audacity"), (".tracklist.txt", "tracklist"),
                        (".xml", "rekordbox")):
        if name.endswith(ending):
            return fmt
    return Path(name).suffix.lstrip(".")


def strength_meaning(settings: dict) -> str:
    """What a boundary's strength is under these decoding settings (written beside it)."""
    peaks = settings.get("peaks", {})
    if peaks.get("subtract_local_mean", True):
        return "the activation at the boundary minus its local mean: not a probability"
    if peaks.get("smooth_s", 0.0) > 0:
        return (f"the detector's activation averaged over +-{peaks['smooth_s']:g} s of where the "
                "boundary was found: its mean probability there that a crossover lies within a "
                "second")
    return ("the detector's activation at the boundary: its probability that a crossover lies "
            "within a second of that instant")


SAVE_FORMATS = ("txt", "lab", "jams", "json", "cue", "audacity", "tracklist", "rekordbox")


class Detector:
    """A trained boundary detector, loaded once.

    Parameters
    ----------
    checkpoint : str or Path, optional
        A checkpoint written by ``train.py`` or ``boundaries export``; default: the shipped model
        (the track-change detector of MODEL_CARD.md).
    device : str
        ``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    overrides : list of str
        ``KEY=VALUE`` settings layered over the checkpoint's (e.g. ``peaks.min_distance_s=20``).

    Examples
    --------
    >>> det = boundaries.Detector()
    >>> for result in det.detect_many(["a.mp3", "b.flac"]):
    ...     print(result.source, result.boundaries_s)
    """

    def __init__(self, checkpoint=None, device: str = "auto", overrides=()):
        from boundaries.config import apply_overrides
        from boundaries.model.checkpoints import model_from_state, read_checkpoint

        path = Path(checkpoint) if checkpoint else DEFAULT_MODEL
        if checkpoint is None and not path.exists():
            raise BoundariesError(f"{path}: the shipped model is missing (an incomplete "
                                  "install?); reinstall boundaries or pass a checkpoint")
        self.state, self.model_id = read_checkpoint(path)
        self.model, cfg = model_from_state(self.state, path, device)
        self.device = _model_device(self.model)
        if self.device == "cpu" and str(device).startswith("cuda"):
            logger.warning("%s: the track-change detector runs on the CPU (numpy); --device %s "
                           "is not used", printable(path), device)
        self.cfg = apply_overrides(cfg, list(overrides))
        self.checkpoint = path

    @classmethod
    def from_checkpoint(cls, path, device: str = "auto", overrides=()) -> "Detector":
        """The detector saved in ``path`` (``runs/NAME/best.pt`` or an exported model)."""
        return cls(path, device, overrides)

    @property
    def sr(self) -> int:
        """The sample rate the model's features are computed at (22050 Hz)."""
        return self.cfg.audio.sr

    @property
    def fps(self) -> float:
        """Frames per second of the log-mel and the activations (sr / hop_length)."""
        return self.cfg.fps

    def log_mel(self, audio, sr=None) -> tuple:
        """``(log-mel [n_mels, n_frames], duration_s)`` of a file path or an array at ``sr``."""
        from boundaries.signal.audio import audio_from_array, load_audio
        from boundaries.signal.features import log_mel

        if isinstance(audio, (str, Path)):
            if sr is not None:
                raise ValueError("sr= is for arrays; a file's rate is read from the file")
            y = load_audio(audio, sr=self.sr)
        else:
            if sr is None:
                raise ValueError("an array needs its sample rate: detect(y, sr=44100)")
            y = audio_from_array(audio, sr, self.sr)
        return log_mel(y, sr=self.sr, **vars(self.cfg.features)), len(y) / self.sr

    def detect(self, audio, sr=None, *, threshold=None, n_tracks=None, keep_mel=False,
               snap=None) -> Result:
        """Boundaries of one recording.

        Parameters
        ----------
        audio : str, Path, np.ndarray or torch.Tensor
            An audio file (any format :func:`boundaries.signal.audio.load_audio` reads), or
            samples of shape (n_samples,), (n_samples, channels) or (channels, n_samples).
        sr : int, optional
            The array's sample rate (any rate; resampled exactly as a file is). Not for files.
        threshold : float, optional
            Peak threshold on the strength (default: the one tuned on validation; a detector
            with expected-F decoding instead keeps, per file, the peaks that maximise the
            expected F, ``settings["decoder"] == "expected_f"``).
        n_tracks : int, optional
            The recording holds this many tracks: exactly ``n_tracks - 1`` crossovers.
        keep_mel : bool
            Keep the log-mel on the result (for :meth:`Result.plot`).
        snap : None or "beats"
            Move each boundary to the nearest beat within 0.35 s (librosa's beat tracker).
        """
        mel, duration_s = self.log_mel(audio, sr)
        source = str(audio) if isinstance(audio, (str, Path)) else None
        return self.detect_mel(mel, duration_s, source=source, threshold=threshold,
                               n_tracks=n_tracks, keep_mel=keep_mel, snap=snap)

    def activations(self, mel) -> np.ndarray:
        """The per-frame activation ``[n_frames]`` in [0, 1] of a log-mel (see :meth:`log_mel`),
        before decoding: what scoring and the study pool over files."""
        from boundaries.detection.inference import activations_for

        return activations_for(self.model, mel, self.cfg, self.device)

    def detect_mel(self, mel, duration_s, *, source=None, threshold=None, n_tracks=None,
                   keep_mel=False, snap=None) -> Result:
        """Boundaries from a log-mel computed with this detector's settings (see
        :meth:`log_mel`): what folder batches use, whose workers compute the features."""
        from boundaries.detection.inference import boundaries_for

        check_decoding(threshold, n_tracks)
        if snap not in (None, "beats"):
            raise DecodingError(f"snap {snap!r}: the one snapping target is 'beats'")
        acts, times, strengths = boundaries_for(self.model, mel, self.cfg, self.device,
                                                threshold, n_tracks)
        if snap == "beats" and len(times):
            from boundaries.detection import beats

            times = beats.snap(times, beats.beat_times(mel, sr=self.sr,
                                                       hop_length=self.cfg.features.hop_length))
        return Result(np.asarray(times, dtype=np.float64), np.asarray(strengths), acts,
                      self.fps, float(duration_s), self.model_id, source,
                      self.settings(threshold, n_tracks, snap),
                      mel if keep_mel else None, self.sr)

    def settings(self, threshold=None, n_tracks=None, snap=None) -> dict:
        """The decoding a call with these options uses: threshold, track count, snapping, peak
        picking."""
        if expected_f.in_use(getattr(self.model, "expected_f", None), threshold, n_tracks):
            # no one threshold: the peaks above a low one are candidates, and each file keeps
            # the strongest that maximise its expected F
            return {"threshold": None, "n_tracks": None, "snap": snap, "decoder": "expected_f",
                    "peaks": {**vars(self.cfg.peaks),
                              "threshold": expected_f.CANDIDATE_THRESHOLD}}
        used = self.cfg.peaks.threshold if threshold is None else float(threshold)
        return {"threshold": used, "n_tracks": n_tracks, "snap": snap,
                "decoder": "best_k" if n_tracks is not None else "threshold",
                "peaks": {**vars(self.cfg.peaks), "threshold": used}}

    def detect_many(self, paths, *, on_error: str = "raise", **options):
        """Yield a :class:`Result` per file, the model loaded once. ``on_error="skip"`` logs a
        file that cannot be read (one line) and goes on; ``"raise"`` stops at it."""
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: choose raise or skip")
        for path in paths:
            try:
                yield self.detect(path, **options)
            except BoundariesError as exc:
                if on_error == "raise":
                    raise
                logger.error("skipped: %s", exc)


def _model_device(model):
    """Where the model runs: its parameters' device (a CNN), or ``cpu`` (the numpy detector)."""
    parameters = getattr(model, "parameters", None)
    return next(parameters()).device if parameters is not None else "cpu"


def check_decoding(threshold, n_tracks) -> None:
    """Refuse a threshold outside [0, 1] (or NaN) and a track count under 1."""
    if threshold is not None and not (np.isfinite(threshold) and 0 <= threshold <= 1):
        raise DecodingError(f"threshold {threshold}: give a number in [0, 1] (activations and "
                            "strengths lie in [0, 1])")
    if n_tracks is not None and (isinstance(n_tracks, bool) or int(n_tracks) != n_tracks
                                 or n_tracks < 1):
        raise DecodingError(f"n_tracks {n_tracks!r}: a recording holds at least 1 track")


_DEFAULT = {}


def detect(audio, sr=None, *, checkpoint=None, device: str = "auto", **options) -> Result:
    """Boundaries of one recording with the shipped model (or ``checkpoint``), loaded once per
    process and reused by later calls. See :meth:`Detector.detect` for the options.

    >>> result = boundaries.detect("mix.mp3")
    >>> result.boundaries_s
    """
    key = (str(checkpoint), device)
    if key not in _DEFAULT:
        _DEFAULT[key] = Detector(checkpoint, device)
    return _DEFAULT[key].detect(audio, sr, **options)
