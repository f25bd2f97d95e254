"""Decode any common audio file to mono float32 at one sample rate.

soundfile (libsndfile 1.2) reads wav, flac, ogg/vorbis, opus, mp3 and aiff without ffmpeg; soxr
resamples. Both are called directly: ``librosa.load`` was measured 0.5-0.7 s slower per 10 minutes
of audio. Decoding, downmixing and resampling run block by block, so an hour-long stereo mix never
sits in memory at its source rate. Formats libsndfile cannot read (m4a, aac, wma) go through ffmpeg
when it is installed.
"""

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from boundaries.errors import AudioError, first_line

logger = logging.getLogger(__name__)

DEFAULT_SR = 22050
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".mp4", ".wma")
MIN_SAMPLES = 512  # one hop (23 ms at 22.05 kHz): anything shorter has no usable frame
BLOCK_FRAMES = 1 << 20  # ~24 s of 44.1 kHz audio per decode block
MIN_SOURCE_SR = 1000  # below this a header's rate is wrong, not audio (telephone speech is 8 kHz)
# Float files may exceed full scale a little; far beyond it the squares in the STFT overflow
MAX_PEAK = 1e4


def _fail(path, problem: str, advice: str) -> AudioError:
    return AudioError(f"{path}: {problem}; {advice}")


def check_readable(path: Path) -> None:
    """Raise :class:`AudioError` unless ``path`` is a non-empty readable file."""
    if not path.exists():
        raise _fail(path, "file not found", "check the path")
    if path.is_dir():
        raise _fail(path, "is a folder, not an audio file", "pass the files inside it")
    if not path.is_file():  # a pipe or a device: reading it could block for ever
        raise _fail(path, "is not a regular file (a pipe or a device?)", "pass audio files")
    if path.stat().st_size == 0:
        raise _fail(path, "empty file (0 bytes)", "re-export or remove it")
    if not os.access(path, os.R_OK):
        raise _fail(path, "permission denied", "make the file readable (chmod +r)")


def _downmix_matrix(channels: int) -> np.ndarray:
    # A matrix product: y.mean(axis=1) was measured 15x slower on a 10-minute stereo file.
    return np.full((channels, 1), 1.0 / channels, dtype=np.float32)


class _NativeStderr:
    """Holds what C libraries print to file descriptor 2 while they decode one file.

    libmpg123, inside libsndfile, prints its resync notes ("Note: Illegal Audio-MPEG-Header ...")
    straight to descriptor 2, around the one line a bad file gets. ``muted()`` points descriptor 2
    at a scratch file for one library call only, so that this package's own messages (progress
    between blocks) still reach the terminal; what was caught goes to the debug log.
    """

    def __init__(self, path: Path):
        self.path = path
        self.sink = None

    @contextlib.contextmanager
    def muted(self):
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no descriptor 2 or no sys.stderr (a
            # detached service, pythonw): nothing to mute
            yield
            return
        if self.sink is None:
            self.sink = tempfile.TemporaryFile()
        os.dup2(self.sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    def close(self) -> None:
        if self.sink is None:
            return
        self.sink.seek(0)
        said = self.sink.read().decode(errors="replace").strip()
        self.sink.close()
        if said:
            logger.debug("%s: the decoder said: %s", self.path, said.replace("\n", " | "))


# libsndfile says this when no decoder takes the file; check_readable has already ruled it out
_NOT_A_FILE = "does not exist or is not a regular file"


def _decode_soundfile(path: Path, sr: int, progress=None) -> np.ndarray:
    native = _NativeStderr(path)
    try:
        return _decode_opened(path, sr, progress, native)
    finally:
        native.close()


def _decode_opened(path: Path, sr: int, progress, native: _NativeStderr) -> np.ndarray:
    try:
        with native.muted():
            # bytes: a file name that is not valid UTF-8 (an old Latin-1 disk) opens too
            handle = sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if path.suffix.lower() in FFMPEG_EXTENSIONS and shutil.which("ffmpeg"):
            return _decode_ffmpeg(path, sr)
        # libsndfile's own words, without its repr of the bytes path opened above
        reason = getattr(exc, "error_string", None) or first_line(exc, 120)
        if _NOT_A_FILE in reason:
            reason = "no decoder recognises its contents"
        raise _fail(path, f"cannot decode ({reason}): not audio, corrupt, or an "
                    "unsupported format", "convert it to wav, flac, ogg or mp3 (or install ffmpeg "
                    "for m4a)") from None
    with handle:
        if handle.samplerate < MIN_SOURCE_SR:
            raise _fail(path, f"claims a sample rate of {handle.samplerate} Hz (a broken header?)",
                        "re-export it at a real rate, e.g. 44100 Hz")
        return _decode_blocks(path, handle, sr, progress, native)


def _decode_blocks(path: Path, handle: sf.SoundFile, sr: int, progress,
                   native: _NativeStderr) -> np.ndarray:
    def blocks():
        while True:
            with native.muted():
                block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            yield block
            if len(block) < BLOCK_FRAMES:
                return

    n_read = 0

    def counted():
        nonlocal n_read
        for block in blocks():
            n_read += len(block)
            if progress is not None:  # seconds of this file decoded so far
                progress(n_read / handle.samplerate)
            yield block

    try:
        y = _mono_resampled(counted(), handle.channels, handle.samplerate, sr,
                            max(handle.frames, 0))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise _fail(path, f"truncated or corrupt after {n_read / handle.samplerate:.1f} s "
                    f"({first_line(exc, 120)})", "re-export or re-download it") from None
    problem = _truncation(path, handle, n_read)
    if problem:
        raise _fail(path, f"truncated: {problem}", "re-export or re-download it")
    return y


def _mono_resampled(blocks, channels: int, source_sr: int, sr: int, n_frames: int) -> np.ndarray:
    """Downmix and resample ``(frames, channels)`` float32 blocks, the last one shorter than
    ``BLOCK_FRAMES``: the one path of both files and arrays, so they give identical samples."""
    mix = _downmix_matrix(channels)
    stream = soxr.ResampleStream(source_sr, sr, 1, dtype="float32", quality="HQ") \
        if source_sr != sr else None
    # One buffer of the expected output length, filled block by block: collecting the blocks and
    # concatenating them held the signal twice (a 2-hour mix peaked 0.6 GB higher).
    out = _OutputBuffer(int(np.ceil(n_frames * sr / source_sr)) + 64)
    for block in blocks:
        last = len(block) < BLOCK_FRAMES
        mono = (block @ mix)[:, 0] if len(block) else np.zeros(0, np.float32)
        out.append(stream.resample_chunk(mono, last=last) if stream else mono)
    return out.result()


def audio_from_array(y, sr_in: int, sr: int = DEFAULT_SR) -> np.ndarray:
    """Mono float32 at ``sr`` Hz from an array, exactly as :func:`load_audio` gives it from a file
    holding the same float32 samples.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor [shape=(n_samples,) or (n_samples, channels) or
        (channels, n_samples)]
        Samples, float or integer PCM (integers are scaled to [-1, 1) as soundfile does).
        Two-dimensional input is read as channels along the shorter axis (at most 8 channels).
    sr_in : int > 0
        The sample rate of ``y``.
    sr : int > 0
        The target rate.

    Raises
    ------
    ValueError
        A rate that is not a positive integer, a shape that is not mono or multichannel, an
        empty array, or NaN or infinite samples.
    """
    if isinstance(sr_in, bool) or not isinstance(sr_in, (int, np.integer)) or sr_in <= 0:
        raise ValueError(f"sr={sr_in!r}: give the array's sample rate in Hz as a positive "
                         "integer, e.g. sr=44100")
    if hasattr(y, "detach"):  # a torch tensor
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.unsignedinteger):  # offset binary: 128 is silence in uint8
        half = float(np.iinfo(y.dtype).max // 2 + 1)
        y = (y.astype(np.float64) - half).astype(np.float32) / np.float32(half)
    elif np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.float32) / float(-np.iinfo(y.dtype).min)
    elif not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"audio of dtype {y.dtype}: give float or integer PCM samples")
    frames = _as_frames_by_channels(y.astype(np.float32, copy=False))
    if len(frames) < MIN_SAMPLES * sr_in / sr:
        raise ValueError(f"audio of {len(frames)} samples at {sr_in} Hz: too short (under one "
                         "frame); give at least 25 ms")
    if not np.isfinite(frames).all():
        raise ValueError("audio contains NaN or infinite samples")
    if sr_in < MIN_SOURCE_SR:
        raise ValueError(f"sr={sr_in}: under {MIN_SOURCE_SR} Hz is not an audio rate")
    blocks = [frames[i:i + BLOCK_FRAMES] for i in range(0, len(frames), BLOCK_FRAMES)]
    if len(blocks[-1]) == BLOCK_FRAMES:  # the file reader ends on a short (maybe empty) block
        blocks.append(frames[:0])
    y = _mono_resampled(blocks, frames.shape[1], int(sr_in), sr, len(frames))

    def fail(problem, advice):
        return ValueError(f"audio {problem}; {advice}")

    return _conditioned(y, fail)


MAX_CHANNELS = 8


def _as_frames_by_channels(y: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` from a mono or multichannel array in either orientation."""
    if y.ndim == 1:
        return y[:, None]
    if y.ndim == 2 and min(y.shape) <= MAX_CHANNELS and y.shape[0] != y.shape[1]:
        return np.ascontiguousarray(y if y.shape[1] < y.shape[0] else y.T)
    raise ValueError(f"audio of shape {y.shape}: give (n_samples,) for mono, or (n_samples, "
                     f"channels) / (channels, n_samples) with at most {MAX_CHANNELS} channels")


class _OutputBuffer:
    """A float32 array filled in order; grows (rarely: a header that under-reports its length)."""

    def __init__(self, capacity: int):
        self.data = np.empty(max(capacity, 1), dtype=np.float32)
        self.n = 0

    def append(self, piece: np.ndarray) -> None:
        if self.n + len(piece) > len(self.data):
            grown = np.empty(max(2 * len(self.data), self.n + len(piece)), dtype=np.float32)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:self.n + len(piece)] = piece
        self.n += len(piece)

    def result(self) -> np.ndarray:
        return self.data[:self.n]


def _truncation(path: Path, handle: sf.SoundFile, n_read: int):
    """Why the file looks cut off, or None.

    libsndfile quietly shortens a cut WAV's frame count and decodes a cut Ogg up to its last whole
    page, so the containers are checked by hand: the RIFF data size against the file size, and the
    end-of-stream flag that every complete Ogg stream sets on its last page.
    """
    if handle.format in {"WAV", "WAVEX"}:
        missing = _riff_missing_bytes(path)
        if missing:
            return f"the RIFF header promises {missing} more bytes of audio than the file holds"
    elif handle.format == "OGG" and not _ogg_has_end_of_stream(path):
        return "the Ogg stream has no end-of-stream page"
    elif handle.frames > 0 and n_read < 0.99 * handle.frames:
        return f"header promises {handle.frames} frames, file holds {n_read}"
    return None


def _riff_missing_bytes(path: Path) -> int:
    """Bytes the RIFF 'data' chunk declares beyond the end of the file (0 if complete/unknown)."""
    with open(path, "rb") as handle:
        header = handle.read(1 << 16)
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return 0
    pos = 12
    while pos + 8 <= len(header):
        chunk, size = header[pos:pos + 4], int.from_bytes(header[pos + 4:pos + 8], "little")
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF):  # streamed writers leave the size unset
                return 0
            return max(0, pos + 8 + size - path.stat().st_size)
        pos += 8 + size + (size & 1)
    return 0


def _ogg_has_end_of_stream(path: Path) -> bool:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - (1 << 16)))
        tail = handle.read()
    last_page = tail.rfind(b"OggS")
    # header_type byte (offset 5): bit 0x04 marks the last page of a logical stream.
    return last_page >= 0 and last_page + 5 < len(tail) and bool(tail[last_page + 5] & 0x04)


def _decode_ffmpeg(path: Path, sr: int) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
           "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise _fail(path, f"ffmpeg cannot decode it ({message[-1] if message else 'error'})",
                    "re-export it as wav or flac")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path, sr: int = DEFAULT_SR, progress=None) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        An audio file: wav, flac, ogg/vorbis, opus, mp3, aiff (m4a/aac with ffmpeg installed).
    sr : int > 0
        Target sample rate; any source rate is resampled with soxr (HQ).
    progress : callable, optional
        Called with the seconds decoded so far after each block (~24 s of audio): what lets a
        batch show progress inside an hour-long file.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Channels are averaged. Digital silence is valid audio and is returned as zeros.

    Raises
    ------
    AudioError
        Missing, unreadable, empty, corrupt or truncated file; non-finite samples; fewer than
        ``MIN_SAMPLES`` samples. The message names the file, the problem and what to do.
    """
    path = Path(path)
    check_readable(path)
    try:
        y = _decode_soundfile(path, sr, progress)
    except PermissionError:
        raise _fail(path, "permission denied", "make the file readable (chmod +r)") from None
    except MemoryError:
        raise _fail(path, "too large to decode in memory", "split it into shorter files") from None
    if y.size == 0:
        raise _fail(path, "holds no audio samples (header only?)", "re-export or remove it")
    if y.size < MIN_SAMPLES:
        raise _fail(path, f"too short ({y.size} samples at {sr} Hz, under one frame)",
                    "use clips of at least 25 ms")
    return _conditioned(y, lambda problem, advice: _fail(path, problem, advice))


def _conditioned(y: np.ndarray, fail) -> np.ndarray:
    """``y`` without its DC offset (a constant carries no boundary, but its steps at the file's
    edges would look like two); non-finite samples and absurd levels (a float file at 1e30) are
    refused, since their squares overflow to NaN features."""
    # the extremes, not np.abs(y) or np.isfinite(y): a 2-hour signal would be copied twice
    low, high = float(y.min()), float(y.max())
    if not (np.isfinite(low) and np.isfinite(high)):  # NaN propagates into both
        raise fail("contains NaN or infinite samples", "re-export it from the source")
    peak = max(high, -low)
    if peak > MAX_PEAK:
        raise fail(f"samples reach {peak:.3g}, far beyond full scale (1.0)",
                   "normalise the audio (or export it as 16/24-bit PCM)")
    y -= np.float32(y.mean(dtype=np.float64))
    return y


WRITE_BLOCK = 1 << 16


def write_audio(path, y: np.ndarray, sr: int, fmt: str) -> None:
    """Write ``y`` (mono, or frames x channels) as ``ogg`` (Vorbis), ``flac`` or ``wav`` (16-bit),
    atomically and block by block: long single-call Vorbis writes crash libvorbis."""
    from boundaries.atomic import atomic_path

    subtype = {"ogg": "VORBIS", "flac": "PCM_16", "wav": "PCM_16"}[fmt]
    with atomic_path(path) as tmp:
        channels = 1 if y.ndim == 1 else y.shape[1]
        with sf.SoundFile(tmp, "w", sr, channels, subtype=subtype, format=fmt.upper()) as handle:
            for begin in range(0, len(y), WRITE_BLOCK):
                handle.write(y[begin:begin + WRITE_BLOCK])


def find_audio_files(root, extensions=AUDIO_EXTENSIONS) -> list:
    """Audio files under ``root`` (a file or a folder searched recursively), sorted.

    Hidden files and folders (names starting with '.') are skipped: they hold partial downloads
    and this package's own temporary files.
    """
    root = Path(root)
    exts = {e.lower() for e in extensions}
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise AudioError(f"{root}: no such file or folder; check the path")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in exts)
    return sorted(found)
