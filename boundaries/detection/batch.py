"""``boundaries detect``: a trained model over many files, resumable and safe to interrupt.

Decoding and log-mel run in worker processes while the main process runs the model. Outputs mirror
the input tree under the output folder (``<stem>.boundaries.<fmt>``, ``<stem>.cue`` ...), each
written atomically beside a run record that decides whether a rerun may skip the file; a bad file
costs one line and the batch goes on; ``boundaries.csv`` and ``rekordbox.xml`` cover the batch.
"""

import csv
import errno
import io
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from queue import Empty

import numpy as np
import soundfile as sf

from boundaries.atomic import atomic_path, write_text
from boundaries.detection import BATCH_FORMATS
from boundaries.errors import BoundariesError, DecodingError, file_failure, printable
from boundaries.signal.audio import find_audio_files
from boundaries.signal.features import (
    file_features,
    init_worker,
    limit_worker_threads,
    sampled_fingerprint,
)
from boundaries.train import distributed

logger = logging.getLogger(__name__)

DJ_NAMES = {"cue": ".cue", "audacity": ".audacity.txt", "tracklist": ".tracklist.txt"}
RECORD = "run.json"  # <stem>.boundaries.run.json: what the last run of a file used and found
# Write errors that will hit every later file too: stop the batch instead of failing each file.
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def ensure_writable(out_dir) -> Path:
    """Create ``out_dir`` and prove a file can be written in it, or raise one clear line."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BoundariesError(f"{out_dir}: cannot write outputs here ({exc.strerror}); choose "
                              "another --out, or fix its permissions or free space") from None
    return out_dir


@dataclass
class Job:
    audio_path: Path
    out_stem: Path  # OUT/sub/dir/name (formats add .boundaries.<fmt>)
    input_index: int = 0  # which of the command's inputs holds the file

    def output(self, fmt: str) -> Path:
        """``<stem>.boundaries.<fmt>`` for the research formats and the run record;
        ``<stem>.cue``, ``<stem>.audacity.txt``, ``<stem>.tracklist.txt`` for the DJ ones."""
        return self.sibling(DJ_NAMES.get(fmt, f".boundaries.{fmt}"))

    def sibling(self, ending: str) -> Path:
        """``<stem><ending>`` beside the file's other outputs."""
        return self.out_stem.parent / f"{self.out_stem.name}{ending}"


@dataclass(frozen=True)
class Outputs:
    """What a batch writes for each file, and whether existing outputs are redone."""
    formats: tuple = ("txt",)
    save_activations: bool = False  # <stem>.activations.npy
    plot: bool = False  # <stem>.boundaries.png
    sonify: bool = False  # <stem>.clicks.ogg: the audio with a click at each boundary
    overwrite: bool = False

    @property
    def per_file(self) -> list:
        return [f for f in self.formats if f not in BATCH_FORMATS]


def input_record(path) -> dict:
    """What a batch records about an input beside its outputs, to tell later whether it changed."""
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "fingerprint": sampled_fingerprint(path)}


def read_record(job):
    """The record of a file's last run (``<stem>.boundaries.run.json``), or None."""
    try:
        return json.loads(job.output(RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_done(job, record, outputs: Outputs, model_id: str, settings: dict) -> bool:
    """Skip a file only when its ``record`` (:func:`read_record`) says the same model and decoding
    ran on the same input (size, mtime and fingerprint as now), and every output asked for
    exists."""
    if outputs.overwrite or not isinstance(record, dict):
        return False
    try:
        same_input = record.get("input") == input_record(job.audio_path)
    except OSError:
        return False
    return (same_input and record.get("model_id") == model_id
            and record.get("settings") == json.loads(json.dumps(settings))
            and all(job.output(f).exists() for f in outputs.per_file))


@dataclass
class Report:
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    audio_s: float = 0.0
    seconds: float = 0.0  # wall time of the whole batch
    # (file, duration_s, boundaries_s, strengths) of every file done or skipped
    recordings: list = field(default_factory=list)

    @property
    def rows(self) -> list:
        """``(file, time_s, strength)`` rows of boundaries.csv."""
        return [(f, float(t), float(s)) for f, _, times, strengths in self.recordings
                for t, s in zip(times, strengths)]


def plan_jobs(inputs, out_dir, extensions) -> tuple:
    """Jobs for every audio file under ``inputs``, each with its own output stem; a path that is
    neither file nor folder fails. Outputs mirror each input's tree under ``out_dir``; where two
    files would share outputs, their extensions (song.mp3, song.wav side by side) and then their
    input's name (a/song.wav, b/song.wav given as two inputs) keep them apart."""
    jobs, failed = [], {}
    for index, item in enumerate(map(Path, inputs)):
        try:
            files = find_audio_files(item, extensions)
        except BoundariesError as exc:
            failed[item] = str(exc)
            continue
        base = item.parent if item.is_file() else item
        jobs.extend(Job(f, Path(out_dir) / f.relative_to(base).with_suffix(""), index)
                    for f in files)
    labels = _input_labels(inputs)
    for job in _clashing(jobs):
        job.out_stem = job.out_stem.with_name(job.audio_path.name)
    for job in _clashing(jobs):
        relative = job.out_stem.relative_to(out_dir)
        job.out_stem = Path(out_dir) / labels[job.input_index] / relative
    return jobs, failed


def _clashing(jobs) -> list:
    stems = {}
    for job in jobs:
        stems.setdefault(job.out_stem, []).append(job)
    return [job for group in stems.values() if len(group) > 1 for job in group]


def _input_labels(inputs) -> list:
    """A distinct folder name per input (its own name, numbered where two share one)."""
    labels, seen = [], {}
    for item in map(Path, inputs):
        name = (item.stem if item.is_file() else item.resolve().name) or "input"
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return labels


def _feature_stream(jobs, cfg, n_workers, advance=None):
    """``(job, (mel, duration_s, error))`` in job order, decoded in ``n_workers`` processes;
    ``advance(path, seconds)`` hears of each decoded block (~24 s of audio) as it happens."""
    args = (cfg.audio.sr, vars(cfg.features))
    n_workers = min(n_workers, len(jobs))  # no idle workers (each costs ~100 MB)
    if n_workers <= 1:
        for job in jobs:
            report = (lambda s, p=str(job.audio_path): advance(p, s)) if advance else None
            yield job, file_features(job.audio_path, *args, report)
        return
    limit_worker_threads()
    context = get_context("spawn")
    queue = context.Queue() if advance else None
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_worker,
                             initargs=(queue,)) as pool:
        pending = []
        for job in jobs:  # bounded read-ahead: at most 2 files per worker in flight
            pending.append((job, pool.submit(file_features, job.audio_path, *args)))
            if len(pending) >= 2 * n_workers:
                head, future = pending.pop(0)
                yield head, _result(future, queue, advance)
        for job, future in pending:
            yield job, _result(future, queue, advance)


def _result(future, queue, advance):
    """The future's result, passing the workers' progress reports on while it is pending."""
    if queue is None:  # nothing to pass on: block (a polling loop would spin a core)
        return future.result()
    while True:
        finished = future.done()
        while True:
            try:
                advance(*queue.get(timeout=0 if finished else 0.2))
            except Empty:
                break
        if finished:
            return future.result()


def run_detect(jobs, detector, outputs: Outputs, *, threshold=None, n_tracks=None, snap=None,
               n_workers=1, progress=True) -> Report:
    cfg = detector.cfg
    settings = detector.settings(threshold, n_tracks, snap)
    report = Report()
    todo = []
    for job in jobs:
        record = read_record(job)
        if is_done(job, record, outputs, detector.model_id, settings):
            report.skipped.append(job)
            report.recordings.append(_recording(job, record))
        else:
            todo.append(job)
    bar = AudioProgress(todo) if progress else None
    for job, (mel, duration_s, error) in _feature_stream(todo, cfg, n_workers,
                                                         bar.advance if bar else None):
        if bar:
            bar.finish(job)
        if error:
            report.failed[job.audio_path] = error
            logger.error("%s", error)
            continue
        try:
            result = detector.detect_mel(mel, duration_s, source=str(job.audio_path),
                                         threshold=threshold, n_tracks=n_tracks,
                                         keep_mel=outputs.plot, snap=snap)
            record = _write_outputs(job, result, outputs)
            report.done.append(job)
            report.audio_s += duration_s
            report.recordings.append(_recording(job, record))
        except OSError as exc:
            message = (f"{printable(job.audio_path)}: cannot write outputs under "
                       f"{printable(job.out_stem.parent)} ({exc.strerror}); check free space "
                       "and permissions")
            if exc.errno in FATAL_WRITE_ERRORS:  # every later file would fail the same way
                raise BoundariesError(f"{message}. Stopped after {len(report.done)} files; their "
                                      "outputs are complete, rerun to continue") from None
            report.failed[job.audio_path] = message
            logger.error("%s", message)
        except DecodingError:
            raise  # the options, not this file: every file would fail
        except Exception as exc:  # any other failure is this file's: one line
            report.failed[job.audio_path] = file_failure(job.audio_path, exc)
            logger.error("%s", report.failed[job.audio_path])
    if bar:
        bar.close()
    return report


class AudioProgress:
    """A progress bar in seconds of audio, moved by each decoded block (~24 s), so an hour-long
    file shows progress instead of 0/1 until it is done. Totals come from the files' headers."""

    def __init__(self, jobs):
        from tqdm import tqdm

        self.expected = {str(job.audio_path): _header_seconds(job.audio_path) for job in jobs}
        self.seen = dict.fromkeys(self.expected, 0.0)
        self.bar = tqdm(total=round(sum(self.expected.values())), desc="detect", unit="s audio",
                        dynamic_ncols=True)

    def advance(self, path: str, seconds: float) -> None:
        step = min(seconds, self.expected.get(path, seconds)) - self.seen.get(path, 0.0)
        if step > 0:
            self.seen[path] = self.seen.get(path, 0.0) + step
            self.bar.update(round(self.seen[path]) - round(self.seen[path] - step))

    def finish(self, job) -> None:
        """A file done (or failed): whatever its blocks did not report counts now."""
        path = str(job.audio_path)
        self.advance(path, self.expected.get(path, 0.0))

    def close(self) -> None:
        self.bar.close()


def _header_seconds(path) -> float:
    try:
        return float(sf.info(os.fsencode(path)).duration)
    except Exception:  # an unreadable header: the decode will say why, the bar just guesses 0
        return 0.0


def _write_outputs(job, result, outputs: Outputs) -> dict:
    """Every output of one file, then its run record (returned)."""
    record = {"input": input_record(job.audio_path)}
    for fmt in outputs.per_file:
        result.save(job.output(fmt), fmt)
    if outputs.save_activations:
        with atomic_path(job.sibling(".activations.npy")) as tmp, open(tmp, "wb") as handle:
            np.save(handle, result.activations)
    if outputs.plot:
        result.plot(job.sibling(".boundaries.png"))
    if outputs.sonify:
        result.sonify(job.sibling(".clicks.ogg"))
    # written last: it vouches for the outputs above, and holds what boundaries.csv needs
    record.update(source=printable(job.audio_path), duration_s=result.duration_s,
                  model_id=result.model_id,
                  settings=result.settings, boundaries_s=result.boundaries_s.tolist(),
                  strengths=np.asarray(result.strengths, dtype=float).tolist())
    write_text(job.output(RECORD), json.dumps(record, indent=1))
    return record


def _recording(job, record):
    """A file's entry of the batch files (csv, rekordbox), done now or before, from its record."""
    record = record or {}
    return (str(job.audio_path), float(record.get("duration_s", 0.0)),
            record.get("boundaries_s", []), record.get("strengths", []))


def write_csv(path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "boundary_s", "strength"])
    writer.writerows((printable(f), f"{t:.3f}", "" if s != s else f"{s:.4f}")
                     for f, t, s in rows)
    write_text(path, buffer.getvalue())


def write_batch_files(out_dir: Path, report: Report, outputs: Outputs) -> None:
    """boundaries.csv and rekordbox.xml: every file of the batch, done now or before."""
    if "csv" in outputs.formats:
        write_csv(out_dir / "boundaries.csv", report.rows)
    if "rekordbox" in outputs.formats:
        from boundaries import __version__
        from boundaries.detection.exports import rekordbox_xml

        write_text(out_dir / "rekordbox.xml", rekordbox_xml(
            [(f, d, times) for f, d, times, _ in report.recordings], __version__))


def summary_line(report: Report, seconds: float) -> str:
    speed = report.audio_s / seconds if seconds > 0 else float("nan")
    return (f"done {len(report.done)}, skipped {len(report.skipped)} (outputs exist; --overwrite "
            f"to redo), failed {len(report.failed)} | {report.audio_s / 3600:.2f} h of audio in "
            f"{seconds:.1f} s ({speed:.0f}x real time)")


def merge_reports(reports) -> Report:
    merged = Report()
    for report in reports:
        merged.done += report.done
        merged.skipped += report.skipped
        merged.failed.update(report.failed)
        merged.audio_s += report.audio_s
        merged.recordings += report.recordings
    return merged


def detect_paths(inputs, out_dir, detector, outputs: Outputs = Outputs(), **options):
    """Plan, run and summarise a detection batch; returns the :class:`Report`.

    Under torchrun each rank takes every WORLD_SIZE-th file; the reports are gathered, so every
    rank returns the whole batch's report and only rank 0 writes ``boundaries.csv``."""
    started = time.perf_counter()
    cfg = detector.cfg
    ensure_writable(out_dir)
    jobs, failed = plan_jobs(inputs, out_dir, cfg.audio.extensions)
    if not jobs and not failed:
        raise BoundariesError(f"no audio files ({', '.join(cfg.audio.extensions)}) under "
                              f"{', '.join(map(str, inputs))}; check the path")
    order = {str(job.audio_path): i for i, job in enumerate(jobs)}
    mine = jobs[distributed.rank()::distributed.world_size()]
    report = merge_reports(distributed.gather_objects(
        run_detect(mine, detector, outputs, **options)))
    report.failed.update(failed)
    report.recordings.sort(key=lambda rec: order.get(rec[0], -1))  # input order
    if distributed.is_main():
        write_batch_files(Path(out_dir), report, outputs)
    report.seconds = time.perf_counter() - started
    return report
