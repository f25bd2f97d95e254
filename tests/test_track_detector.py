"""The track-change detector end to end on generated audio: train, save, load, detect."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from conftest import CONFIGS, SR, sets

from boundaries.detection import placement
from boundaries.model import track_detector
from boundaries.train import track_change


def _tracky_mix(path, seed, boundaries_s=(14.0, 27.0), total_s=40.0):
    """Three 'tracks' (a chord, filtered noise with a beat, a bright tone), each with its own
    spectrum and level, joined by hard cuts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(total_s * SR)) / SR
    base = 110 * 2 ** (rng.integers(0, 12) / 12)
    parts = [sum(np.sin(2 * np.pi * base * m * t) for m in (1, 1.26, 1.5)),
             np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, "same")
             * (1 + (np.sin(2 * np.pi * 2 * t) > 0.9)),
             np.sin(2 * np.pi * base * 8 * t) + 0.3 * np.sin(2 * np.pi * base * 12 * t)]
    edges = [0.0, *boundaries_s, total_s]
    y = np.zeros_like(t)
    for (a, b), part in zip(zip(edges[:-1], edges[1:]), parts):
        seg = slice(int(a * SR), int(b * SR))
        y[seg] = part[seg] * 0.1 / (np.sqrt(np.mean(part[seg] ** 2)) + 1e-9)
    sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
    path.with_suffix(".txt").write_text("".join(f"{b}\n" for b in boundaries_s))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import train

    tmp = tmp_path_factory.mktemp("track_change")
    for split, n in (("train", 6), ("val", 2)):
        (tmp / split).mkdir()
        for i in range(n):
            _tracky_mix(tmp / split / f"mix_{i}.wav", seed=100 * (split == "val") + i)
    run = tmp / "run"
    args = [*CONFIGS, *sets(tmp, tmp / "train", **{
        "track.kind": "track_change", "track.embed_steps": 3, "track.max_iter": 15,
        "track.recurrence": True, "track.rhythm": True, "track.rhythm_gap_s": 8.0,
        "track.sequence_steps": 3, "track.locator_steps": 3,
        "track.sequence_descriptors": True, "track.expected_f": True}),
        "--val-data", str(tmp / "val"), "--run-dir", str(run)]
    assert train.main(args) == 0
    return tmp, run


def test_a_recurrence_and_rhythm_checkpoint_keeps_its_feature_set(trained):
    from boundaries.model.checkpoints import load_model
    from boundaries.model.embedding_features import RECURRENCE_NAMES
    from boundaries.model.sequence import descriptor_columns
    from boundaries.model.track_detector import RowColumns
    from boundaries.signal.rhythm import NAMES as RHYTHM_NAMES

    _, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    assert model.columns == RowColumns(recurrence=True, rhythm=True, rhythm_gap_s=8.0)
    assert model.columns == RowColumns.of(cfg.track)
    mel = np.random.default_rng(0).standard_normal((cfg.features.n_mels, 3000)).astype(np.float32)
    from boundaries.model.track_detector import row_features

    X, names = row_features(mel, model.network, fps=cfg.fps,
                            columns=RowColumns(recurrence=True, rhythm=True, rhythm_gap_s=8.0))
    assert names[-4:] == list(RECURRENCE_NAMES) and X.shape[1] == len(names)
    assert set(RHYTHM_NAMES) <= set(names) and "rhythm_gap8@32/median" in names
    assert int(np.max(model.trees["feature"])) < X.shape[1]
    # the sequence stage standardised every descriptor column it was trained on: the rhythm
    # ones too, so rows without them would not fit it
    assert list(model.sequence.state["descriptor_columns"]) == list(descriptor_columns(names))
    assert model.frame_activations(mel).shape == (3000,)


def test_checkpoint_loads_as_the_detector_and_finds_the_cuts(trained):
    from boundaries.detection.inference import boundaries_for
    from boundaries.model.checkpoints import load_model
    from boundaries.signal.features import audio_log_mel

    tmp, run = trained
    model, cfg, state = load_model(run / "best.pt")
    assert isinstance(model, track_detector.TrackChangeDetector)
    assert not cfg.peaks.subtract_local_mean and cfg.peaks.min_distance_s > 0
    assert model.expected_f is not None  # fitted at the end of training (track.expected_f)
    mel, _ = audio_log_mel(tmp / "val" / "mix_0.wav", SR, vars(cfg.features))
    acts, times, _ = boundaries_for(model, mel, cfg, "cpu")
    assert acts.shape == (mel.shape[1],) and np.all((acts >= 0) & (acts <= 1))
    assert all(0 < t < 40 for t in times)


def test_a_checkpoint_records_the_libraries_it_was_trained_with_and_export_keeps_them(
        trained, tmp_path):
    import sklearn

    from boundaries.model.checkpoints import export_model, read_checkpoint

    _, run = trained
    export_model(run / "best.pt", tmp_path / "shipped.pt")
    for path in (run / "best.pt", tmp_path / "shipped.pt"):
        environment = read_checkpoint(path)[0]["environment"]
        assert environment["numpy"] == np.__version__
        assert environment["scikit-learn"] == sklearn.__version__
        assert environment["python"].count(".") == 2


def test_a_checkpoint_places_by_the_centroid_its_config_names(trained, tmp_path, monkeypatch):
    import torch

    from boundaries.detection import placement
    from boundaries.model.checkpoints import load_model

    tmp, run = trained
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["config"]["track"]["placement_centroid_s"] == 0.0  # the default: best frame
    state["config"]["track"]["placement_centroid_s"] = 2.0
    torch.save(state, tmp_path / "centroid.pt")
    model, _, _ = load_model(tmp_path / "centroid.pt")
    assert model.placing.centroid_s == 2.0
    seen = []
    monkeypatch.setattr(placement, "refine", lambda *args: seen.append(args) or args[1])
    model.placement = {"stand-in": np.zeros(1)}  # the tiny fixture's placement lost on validation
    model.refine(np.zeros((80, 100), np.float32), [1.0])
    assert seen[0][3].centroid_s == 2.0  # refine(local, times, trees, placing, locator)


def test_detect_cli_runs_the_track_change_checkpoint(trained, tmp_path, capsys):
    from boundaries import cli

    tmp, run = trained
    out = tmp_path / "out"
    assert cli.main(["detect", str(tmp / "val"), "-o", str(out), "--checkpoint",
                     str(run / "best.pt"), "--format", "txt,json", "--jobs", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "mix_0.boundaries.json", "mix_0.boundaries.run.json", "mix_0.boundaries.txt",
        "mix_1.boundaries.json", "mix_1.boundaries.run.json", "mix_1.boundaries.txt"]


def test_detect_with_the_track_count_known_writes_k_minus_1(trained, tmp_path):
    from boundaries import cli
    from boundaries.data.annotations import read_boundaries

    tmp, run = trained
    out = tmp_path / "out"
    assert cli.main(["detect", str(tmp / "val"), "-o", str(out), "--checkpoint",
                     str(run / "best.pt"), "--n-tracks", "3", "--jobs", "1"]) == 0
    for name in ("mix_0", "mix_1"):
        times = read_boundaries(out / f"{name}.boundaries.txt")
        assert len(times) == 2 and np.all(np.diff(times) >= 6.0)


def test_tune_retunes_a_track_change_checkpoint(trained, tmp_path, capsys):
    from boundaries import cli
    from boundaries.model.checkpoints import load_model

    tmp, run = trained
    out = tmp_path / "tuned.pt"
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(tmp / "val"), "-o",
                     str(out)]) == 0
    model, cfg, _ = load_model(out)
    assert isinstance(model, track_detector.TrackChangeDetector)
    printed = capsys.readouterr().out
    assert "minimum distance" in printed and "smoothing" in printed


def test_tune_stores_no_stage_that_its_tuning_switched_off(trained, tmp_path, monkeypatch):
    from boundaries import workflows
    from boundaries.api import DEFAULT_MODEL
    from boundaries.model.checkpoints import load_checkpoint, load_model
    from boundaries.score import evaluation

    def placement_lost(model, data, cfg, device):  # as when placement loses on validation
        model.placement = model.locator = None
        model.expected_f = None  # as when the folders hold no crossover to fit it on
        return cfg, [model.frame_activations(t.mel) for t in data]

    monkeypatch.setattr(evaluation, "tune", placement_lost)
    tmp, _ = trained
    assert {"placement", "locator", "expected_f"} <= set(load_checkpoint(DEFAULT_MODEL))
    workflows.tune(DEFAULT_MODEL, [tmp / "val"], tmp_path / "tuned.pt", progress=False)
    assert not {"placement", "locator", "expected_f"} & set(load_checkpoint(tmp_path / "tuned.pt"))
    model, _, _ = load_model(tmp_path / "tuned.pt")
    assert model.placement is None and model.locator is None and model.expected_f is None


def _placed_by_hand(model, cfg, result, times, strengths, keep):
    """The kept candidates of a detection ``result`` placed as ``boundaries detect`` places them."""
    from boundaries.detection import inference

    acts, expected = result.activations, times[keep]
    if model.placement is None or not len(expected):
        return expected
    moved = model.refine(result.mel, expected, inference.smoothed(acts, cfg.peaks, cfg.fps),
                         strengths[keep])
    return inference.placed(moved, expected, strengths[keep], inference.end_s(acts, cfg))[0]


def test_tune_fits_the_expected_f_decoding_which_detect_then_uses(trained, tmp_path, capsys):
    from boundaries import cli
    from boundaries.api import Detector
    from boundaries.detection import expected_f, inference
    from boundaries.model.checkpoints import export_model, read_checkpoint

    tmp, run = trained
    out = tmp_path / "tuned.pt"
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(tmp / "val"), str(tmp / "train"),
                     "--expected-f", "-o", str(out)]) == 0
    export_model(out, tmp_path / "shipped.pt")
    assert "expected_f" in read_checkpoint(tmp_path / "shipped.pt")[0]
    detector = Detector(tmp_path / "shipped.pt", "cpu")
    model, cfg = detector.model, detector.cfg
    assert cfg.track.expected_f and 0 < model.expected_f.coverage <= 1
    result = detector.detect(tmp / "val" / "mix_0.wav", keep_mel=True)
    assert result.settings["decoder"] == "expected_f" and result.settings["threshold"] is None
    # by hand: the candidates above the low threshold, those the map keeps, then placement
    acts = result.activations
    times, strengths = inference.detections(acts, cfg, threshold=expected_f.CANDIDATE_THRESHOLD)
    keep = model.expected_f.keep(strengths)
    np.testing.assert_allclose(result.boundaries_s, _placed_by_hand(model, cfg, result, times,
                                                                    strengths, keep))
    assert len(result.boundaries_s) >= 1
    # tune's table is scored as detect decodes: the map's picks, placed
    printed = capsys.readouterr().out
    assert "peaks kept per file by the expected-F decoding" in printed
    row = next(line.split() for line in printed.splitlines() if line.startswith("mix_0.wav"))
    assert int(row[2]) == len(result.boundaries_s)
    plain = detector.detect(tmp / "val" / "mix_0.wav", threshold=cfg.peaks.threshold)
    assert plain.settings["decoder"] == "threshold"  # a threshold given replaces it


def test_tune_fits_the_fine_map_with_its_flag_and_keeps_it_on_a_plain_refit(trained, tmp_path,
                                                                            capsys):
    from boundaries import cli
    from boundaries.api import Detector
    from boundaries.model.checkpoints import read_checkpoint

    tmp, run = trained
    fine, again = tmp_path / "fine.pt", tmp_path / "again.pt"
    data = ["--data", str(tmp / "val"), str(tmp / "train")]
    assert cli.main(["tune", str(run / "best.pt"), *data, "--expected-f-fine",
                     "-o", str(fine)]) == 0
    assert "maximise the mean of its expected F@3 and F@0.5" in capsys.readouterr().out
    assert {"fine_strengths", "fine_hit_rates"} <= set(read_checkpoint(fine)[0]["expected_f"])
    # a plain --expected-f refit keeps the checkpoint's own setting
    assert cli.main(["tune", str(fine), *data, "--expected-f", "-o", str(again)]) == 0
    assert "fine_strengths" in read_checkpoint(again)[0]["expected_f"]
    decoding = Detector(fine, "cpu").model.expected_f
    assert Detector(fine, "cpu").cfg.track.expected_f_fine
    # a candidate placed within 0.5 s is within 3 s too, so the fine map lies below the other
    # (isotonic regression keeps the order of its labels)
    grid = np.linspace(0, 1, 201)
    assert np.all(np.interp(grid, *decoding.fine) <= decoding.hit_probabilities(grid) + 1e-12)


def test_tune_fits_the_rescorer_whose_probabilities_detect_then_keeps_by(trained, tmp_path,
                                                                         capsys):
    from boundaries import cli
    from boundaries.api import Detector
    from boundaries.detection import expected_f, inference
    from boundaries.model.checkpoints import export_model, read_checkpoint

    tmp, run = trained
    out = tmp_path / "rescored.pt"
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(tmp / "val"), str(tmp / "train"),
                     "--rescorer", "-o", str(out)]) == 0
    assert "candidates scored by the re-scorer" in capsys.readouterr().out
    assert set(read_checkpoint(out)[0]["rescorer"]) == {"hit", "fine"}
    export_model(out, tmp_path / "shipped.pt")  # the shipped file keeps it
    assert set(read_checkpoint(tmp_path / "shipped.pt")[0]["rescorer"]) == {"hit", "fine"}
    detector = Detector(out, "cpu")
    model, cfg = detector.model, detector.cfg
    assert cfg.track.rescorer and cfg.track.expected_f_fine and model.rescorer is not None
    result = detector.detect(tmp / "val" / "mix_1.wav", keep_mel=True)
    # by hand: the candidates, kept by the re-scorer's probabilities (rows recomputed for this
    # mel: the detector holds another file's by now), then placed
    model.row_probabilities(np.zeros_like(result.mel))
    acts = result.activations
    times, strengths = inference.detections(acts, cfg, threshold=expected_f.CANDIDATE_THRESHOLD)
    probabilities = model.candidate_probabilities(result.mel, acts, times, strengths)
    features = model.candidate_features(result.mel, acts, times, strengths)
    model.row_probabilities(np.zeros_like(result.mel))  # rows of another mel held: not read
    np.testing.assert_array_equal(model.candidate_features(result.mel, acts, times, strengths),
                                  features)
    keep = model.expected_f.keep(strengths, probabilities)
    np.testing.assert_allclose(result.boundaries_s, _placed_by_hand(model, cfg, result, times,
                                                                    strengths, keep))
    # a plain --expected-f refit keeps the checkpoint's own setting, re-scorer included
    again = tmp_path / "again.pt"
    assert cli.main(["tune", str(out), "--data", str(tmp / "val"), "--expected-f", "-o",
                     str(again)]) == 0
    assert "rescorer" in read_checkpoint(again)[0]


@pytest.mark.parametrize("flag", [{"expected_f": True}, {"fine": True}, {"rescorer": True}])
def test_tune_refuses_expected_f_for_a_cnn_checkpoint(tmp_path, flag):
    from boundaries import workflows
    from boundaries.errors import BoundariesError

    with pytest.raises(BoundariesError, match="--expected-f needs a track-change detector"):
        workflows.tune("benchmarks/models/cnn_foote_v1.pt", [tmp_path], tmp_path / "out.pt",
                       progress=False, **flag)


def test_tune_reads_several_validation_folders_together(trained, tmp_path, capsys):
    from boundaries import cli

    tmp, run = trained
    assert cli.main(["tune", str(run / "best.pt"), "--data", str(tmp / "val"), str(tmp / "train"),
                     "-o", str(tmp_path / "tuned.pt")]) == 0
    per_file = [line for line in capsys.readouterr().out.splitlines() if line.startswith("mix_")]
    assert len(per_file) == 8  # 2 validation + 6 training mixes, one table


def test_placement_rows_see_which_track_plays(tmp_path):
    _tracky_mix(tmp_path / "mix.wav", seed=3, boundaries_s=(20.0,), total_s=40.0)
    from boundaries.signal.features import audio_log_mel

    mel, _ = audio_log_mel(tmp_path / "mix.wav", SR, {})
    local = placement.LocalFrames(mel, SR / 512)
    times, X = local.rows(19.0, search_s=3.0)  # a detection 1 s early
    assert abs(times[0] - 16.0) < 0.1 and abs(times[-1] - 22.0) < 0.1
    assert X.shape[1] == placement.N_COLUMNS
    wide_times, wide_X = local.rows(19.0)  # the default width, +-SEARCH_S
    assert abs(wide_times[0] - (19.0 - placement.SEARCH_S)) < 0.1
    assert abs(wide_times[-1] - (19.0 + placement.SEARCH_S)) < 0.1
    assert wide_X.shape == (len(wide_times), placement.N_COLUMNS)
    balance = X[:, 37]  # all bands, 1 s smoothing: -1 outgoing, +1 incoming
    assert balance[times < 19.0].mean() < -0.3 and balance[times > 21.0].mean() > 0.3
    share = X[:, 42]  # the incoming track's share of the fitted gains, all bands
    assert share[times < 19.5].max() < 0.2 and share[times > 20.5].min() > 0.8
    ramp_residual = X[:, 60]  # the first ramp fit, all bands: lowest at the cut
    assert abs(times[np.argmin(ramp_residual)] - 20.0) < 0.25
    eq_bass_share = X[:, 72]  # the appended sub-200-Hz set: its share, after the first 72
    assert eq_bass_share[times < 19.5].mean() < 0.3 and eq_bass_share[times > 20.5].mean() > 0.7


def test_placement_keeps_the_search_width_its_trees_were_trained_with():
    assert placement.search_width({}) == placement.LEGACY_SEARCH_S == 3.0
    assert placement.search_width({"search_s": np.array(7.0)}) == 7.0


def test_placement_smoothing_prefers_a_plateau_to_a_lone_spike():
    frame_times = np.linspace(7.0, 13.0, 61)
    probs = np.full(61, 0.1)
    probs[10] = 0.7  # one frame
    probs[40:45] = 0.5  # a run of frames
    chosen = placement.choose([(10.0, frame_times, probs)])[0]
    assert 11.0 <= chosen <= 11.4
    np.testing.assert_allclose(placement.smoothed(np.ones(7)), 1.0)  # no dip at the ends


def test_placement_prior_keeps_a_weak_far_frame_from_winning():
    frame_times = np.linspace(7.0, 13.0, 61)
    probs = np.full(61, 0.1)
    probs[30], probs[0] = 0.5, 0.6  # at the detection (10 s), and 3 s away
    scored = [(10.0, frame_times, probs)]
    prior = placement.Placing(sigma_s=1.0)
    assert placement.choose(scored)[0] == 7.0
    assert placement.choose(scored, prior)[0] == 10.0
    assert placement.choose([(5.0, np.zeros(0), np.zeros(0))], prior)[0] == 5.0


def test_placement_centroid_moves_to_the_middle_of_a_lopsided_hump():
    frame_times = np.linspace(0.0, 20.0, 201)  # 0.1 s frames
    probs = np.full(201, 0.01)
    probs[95:126] = np.linspace(0.3, 0.9, 31)[::-1]  # peak at 9.5 s, a tail up to 12.5 s
    scored = [(10.0, frame_times, probs)]
    best = placement.choose(scored)[0]
    assert best == pytest.approx(9.7)  # the smoothing's peak: two frames into the ramp
    centroid = placement.choose(scored, placement.Placing(centroid_s=2.0))[0]
    near = np.abs(frame_times - best) <= 2.0
    smooth = placement.smoothed(probs)
    assert centroid == pytest.approx(np.average(frame_times[near], weights=smooth[near]))
    assert best + 0.3 < centroid < best + 1.0  # pulled into the tail, not out of the window
    assert placement.choose(scored, placement.Placing(centroid_s=0.0))[0] == best
    assert placement.choose([(5.0, np.zeros(0), np.zeros(0))],
                            placement.Placing(1.0, centroid_s=2.0))[0] == 5.0


def test_placement_draws_multiply_so_the_frame_they_agree_on_wins():
    frame_times = np.linspace(7.0, 13.0, 61)
    first, second = np.full(61, 0.1), np.full(61, 0.1)
    first[10:15], second[45:50] = 0.9, 0.9  # each draw's own error, 3.5 s apart
    first[28:33] = second[28:33] = 0.6  # where both put the crossover, near the detection
    assert placement.choose([(10.0, frame_times, first, None)])[0] < 8.5
    both = placement.choose([(10.0, frame_times, first, None, ((second, None),))])[0]
    assert both == pytest.approx(10.0)
    located = np.full(61, 0.01)
    located[45:50] = 0.5  # a locator on the second draw that backs its error
    weighted = placement.Placing(locator_weight=1.0)
    scored = [(10.0, frame_times, first, None, ((second, located),))]
    assert placement.choose(scored, weighted)[0] > 11.0
    assert placement.choose(scored, placement.Placing())[0] == pytest.approx(10.0)  # weight 0


def test_placement_stages_split_the_locator_networks_by_draw():
    from boundaries.config import load_config
    from boundaries.model.locator import Locator

    nets = [{"w": np.full(2, float(i), np.float32)} for i in range(4)]
    cfg = load_config(overrides=["track.locator_seeds=2", "track.placement_draws=2"])
    trees, locator, draws = track_change.placement_stages(["t0", "t1"], Locator(nets), cfg)
    assert trees == "t0" and [n["w"][0] for n in locator.networks] == [0.0, 1.0]
    assert len(draws) == 1 and draws[0][0] == "t1"
    assert [n["w"][0] for n in draws[0][1].networks] == [2.0, 3.0]
    single = load_config()
    assert track_change.placement_stages(["t0"], None, single) == ("t0", None, [])


def test_training_with_two_placement_draws_gives_each_its_trees_and_locator(tmp_path,
                                                                           monkeypatch):
    import train

    for split, n in (("train", 4), ("val", 1)):
        (tmp_path / split).mkdir()
        for i in range(n):
            _tracky_mix(tmp_path / split / f"mix_{i}.wav", seed=200 + 10 * (split == "val") + i)
    seen = []

    def capture(detector, val_data, activations, cfg, unplaced, log=print):
        seen.append((detector.placement, detector.locator, list(detector.placement_draws)))
        return cfg

    monkeypatch.setattr(track_change, "tune_placement_stage", capture)
    args = [*CONFIGS, *sets(tmp_path, tmp_path / "train", **{
        "track.kind": "track_change", "track.embed_steps": 2, "track.max_iter": 5,
        "track.locator_steps": 2, "track.placement_draws": 2}),
        "--val-data", str(tmp_path / "val"), "--run-dir", str(tmp_path / "run")]
    assert train.main(args) == 0
    (trees, locator, draws), = seen
    (draw_trees, draw_locator), = draws
    assert len(locator.networks) == len(draw_locator.networks) == 1  # locator_seeds each
    assert not np.array_equal(locator.networks[0]["out.weight"],
                              draw_locator.networks[0]["out.weight"])
    assert any(v.shape != trees[k].shape or not np.array_equal(v, trees[k])
               for k, v in draw_trees.items())


def test_a_second_placement_draw_is_other_trees_and_survives_the_checkpoint(trained, tmp_path):
    import torch

    from boundaries import workflows
    from boundaries.model.checkpoints import SHIPPED_KEYS, load_model
    from boundaries.model.locator import Locator
    from boundaries.signal.features import audio_log_mel
    from boundaries.train.locator import LocatorCNN

    tmp, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    train_data, _ = workflows.load_annotated(tmp / "train", cfg, progress=False)
    quiet = dict(log=lambda _: None)
    model.placement = track_change.fit_placement(train_data, model.fps, cfg, **quiet)
    again_first = track_change.fit_placement(train_data, model.fps, cfg, **quiet)
    second = track_change.fit_placement(train_data, model.fps, cfg, draw=1, **quiet)
    for key, value in model.placement.items():  # draw 0 is the single-draw stage, unchanged
        np.testing.assert_array_equal(again_first[key], value)
    assert any(v.shape != model.placement[k].shape or not np.array_equal(v, model.placement[k])
               for k, v in second.items())
    n_in = placement.N_COLUMNS + cfg.features.n_mels
    torch.manual_seed(3)
    weights = {k: v.numpy() for k, v in LocatorCNN(n_in).state_dict().items()}
    model.placement_draws = [(second, Locator({**weights, "mean": np.zeros(n_in),
                                               "std": np.ones(n_in)}))]
    model.placing = dataclasses.replace(model.placing, locator_weight=1.0)
    again = track_detector.TrackChangeDetector.from_state(
        model.state(), model.fps, cfg.features.n_mels, model.columns, model.placing)
    assert set(model.state()) <= set(SHIPPED_KEYS)  # boundaries export keeps the draws too
    _tracky_mix(tmp_path / "mix.wav", seed=5, boundaries_s=(20.0,), total_s=40.0)
    mel, _ = audio_log_mel(tmp_path / "mix.wav", SR, {"n_mels": cfg.features.n_mels})
    (trees, locator), = again.placement_draws
    for key, value in second.items():
        np.testing.assert_array_equal(trees[key], value)
    assert locator is not None and again.locator is None
    np.testing.assert_array_equal(again.refine(mel, [17.0, 23.0]), model.refine(mel, [17.0, 23.0]))
    local = placement.LocalFrames(mel, model.fps)
    (_, _, probs, _, others), _ = placement.score_one(local, 17.0, model.placement, None,
                                                      model.placement_draws)
    assert len(others) == 1 and not np.array_equal(others[0][0], probs)


def test_stretch_positives_take_each_stretch_between_boundaries_as_a_track(tmp_path):
    from boundaries.data.corpus import TrackData
    from boundaries.train.track_change import embedding_spans

    track = TrackData(tmp_path / "mix.wav", np.zeros((80, 100)), np.array([60.0, 130.0]), 200.0)
    spans = embedding_spans([track], 10.0, positives="stretch")[0]
    assert [s[0].split("#")[1] for s in spans] == ["0", "1", "2"]
    assert {s[1] for s in spans} == {str(tmp_path / "mix.wav")}  # one group: the file
    assert spans[1][2:] == (750, 1150)  # 15 s from each crossover, at 10 frames a second


def test_the_sequence_stage_is_saved_and_used(trained):
    from boundaries.model.checkpoints import load_model

    _, run = trained
    model, cfg, state = load_model(run / "best.pt")
    assert cfg.track.sequence_steps == 3 and model.sequence is not None and "sequence" in state
    columns = model.sequence.scaling[0]  # the descriptors, none of the embedding's columns
    assert state["sequence"]["inp.weight"].shape[1] == 1 + len(columns) > 20
    mel = np.random.default_rng(1).standard_normal((cfg.features.n_mels, 2000)).astype(np.float32)
    with_sequence = model.row_probabilities(mel)
    model.sequence = None
    assert not np.allclose(with_sequence, model.row_probabilities(mel))


def test_the_locator_is_trained_tuned_and_stored_only_where_it_counts(trained):
    from boundaries.model.checkpoints import load_model

    _, run = trained
    model, cfg, state = load_model(run / "best.pt")
    assert cfg.track.locator_steps == 3
    assert cfg.track.locator_weight in cfg.track.locator_weights
    assert ("locator" in state) == (model.locator is not None) == (cfg.track.locator_weight > 0)


def test_placement_is_tuned_among_the_configured_candidates_only(trained):
    from boundaries import workflows
    from boundaries.model.checkpoints import load_model
    from boundaries.model.locator import Locator
    from boundaries.train.locator import LocatorCNN

    tmp, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    train_data, _ = workflows.load_annotated(tmp / "train", cfg, progress=False)
    model.placement = track_change.fit_placement(train_data, model.fps, cfg, log=lambda _: None)
    n_in = placement.N_COLUMNS + cfg.features.n_mels
    weights = {k: v.numpy() for k, v in LocatorCNN(n_in).state_dict().items()}
    model.locator = Locator({**weights, "mean": np.zeros(n_in), "std": np.ones(n_in)})
    val, _ = workflows.load_annotated(tmp / "val", cfg, progress=False)
    activations = [model.frame_activations(t.mel) for t in val]
    for sigmas, weights in (((1.5,), (0.5,)), ((0.0, 2.0), (0.0, 1.0))):
        pinned = cfg.replace(track=dataclasses.replace(
            cfg.track, placement_sigmas_s=sigmas, locator_weights=weights))
        placing, result = track_change.tune_placement(model, val, activations, pinned)
        assert placing.sigma_s in sigmas and placing.locator_weight in weights
        assert "boundary" in result


def test_decoding_is_tuned_among_the_configured_candidates_only(trained):
    from boundaries import workflows
    from boundaries.model.checkpoints import load_model

    tmp, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    val, _ = workflows.load_annotated(tmp / "val", cfg, progress=False)
    activations = [model.frame_activations(t.mel) for t in val]
    for lengths, levels in (((9.0,), (0.45,)), ((5.0, 7.0), (0.3, 0.7))):
        pinned = cfg.replace(track=dataclasses.replace(
            cfg.track, min_track_lengths_s=lengths, plateau_levels=levels))
        tuned = track_change.tune_decoding(val, activations, pinned)
        assert tuned.peaks.min_distance_s in lengths
        assert tuned.peaks.plateau_level in (0.0, *levels)  # 0: no level raised validation F


def test_a_locator_survives_the_checkpoint_and_moves_the_placement(trained, tmp_path):
    import torch

    from boundaries import workflows
    from boundaries.model.checkpoints import load_model
    from boundaries.model.locator import Locator
    from boundaries.signal.features import audio_log_mel
    from boundaries.train.locator import LocatorCNN

    tmp, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    train_data, _ = workflows.load_annotated(tmp / "train", cfg, progress=False)
    # the tiny fixture's placement lost on validation: without trees refine would not place
    model.placement = track_change.fit_placement(train_data, model.fps, cfg, log=lambda _: None)
    n_in = placement.N_COLUMNS + cfg.features.n_mels
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in LocatorCNN(n_in).state_dict().items()}
    model.locator = Locator([{**weights, "mean": np.zeros(n_in), "std": np.ones(n_in)}] * 2)
    model.placing = dataclasses.replace(model.placing, locator_weight=2.0)
    again = track_detector.TrackChangeDetector.from_state(
        model.state(), model.fps, cfg.features.n_mels, model.columns, model.placing)
    _tracky_mix(tmp_path / "mix.wav", seed=5, boundaries_s=(20.0,), total_s=40.0)
    mel, _ = audio_log_mel(tmp_path / "mix.wav", SR, {"n_mels": cfg.features.n_mels})
    assert again.placing.locator_weight == 2.0 and len(again.locator.state) == 2  # two networks
    for key, value in model.locator.state[0].items():
        np.testing.assert_array_equal(again.locator.state[1][key], value)
    np.testing.assert_array_equal(again.refine(mel, [18.0]), model.refine(mel, [18.0]))
    by_trees = dataclasses.replace(model.placing, locator_weight=0.0)
    local = placement.LocalFrames(mel, model.fps)
    (_, times, probs, located, _), _ = placement.score_one(local, 18.0, model.placement,
                                                           model.locator)
    assert located is not None and not np.allclose(  # the locator changes the scores
        placement.frame_scores(18.0, times, probs, located, model.placing)[0],
        placement.frame_scores(18.0, times, probs, located, by_trees)[0])


def _fold_folders(tmp, sources_of):
    """Two training folders (folds) of three cut mixes each, with make_mixes.py-style manifests
    listing ``sources_of[fold]`` as their source tracks."""
    import json

    folders = []
    for fold, sources in enumerate(sources_of):
        folder = tmp / f"fold{fold}" / "train"
        folder.mkdir(parents=True)
        for i in range(3):
            _tracky_mix(folder / f"mix_{i}.wav", seed=10 * fold + i)
        (folder.parent / "manifest.json").write_text(json.dumps(
            {"split": {"train_sources": sources}, "clips": []}))
        folders.append(folder)
    return folders


def test_crossfit_sees_each_fold_through_the_embedding_trained_on_the_other(tmp_path,
                                                                             monkeypatch):
    from boundaries.config import load_config
    from boundaries.train import track_change

    a, b = _fold_folders(tmp_path, [["pkg1/x.ogg"], ["pkg2/y.ogg"]])
    cfg = load_config([CONFIGS[1]], overrides=[
        f"data.train_dir={a}", f"data.extra_train_dirs=[{b}]", "track.kind=track_change",
        "track.crossfit=true"])
    data = [type("Track", (), {"audio_path": p}) for p in sorted(b.glob("*.wav"))
            + sorted(a.glob("*.wav"))]
    monkeypatch.setattr(track_change, "fit_embedding",
                        lambda files, cfg, log: frozenset(f.audio_path.parent for f in files))
    networks, network_of_file = track_change.fit_embeddings(data, cfg, log=lambda _: None)
    assert networks == [frozenset({b}), frozenset({a})]  # fold 1 is data.train_dir
    assert all(track.audio_path.parent not in network
               for track, network in zip(data, network_of_file))


def test_crossfit_refuses_folds_that_share_a_source_track(tmp_path):
    from boundaries.config import load_config
    from boundaries.errors import ConfigError
    from boundaries.train import track_change

    a, b = _fold_folders(tmp_path, [["pkg1/x.ogg", "pkg3/z.ogg"], ["pkg2/y.ogg", "pkg3/z.ogg"]])
    cfg = load_config([CONFIGS[1]], overrides=[
        f"data.train_dir={a}", f"data.extra_train_dirs=[{b}]", "track.crossfit=true"])
    data = [type("Track", (), {"audio_path": p}) for p in sorted(a.glob("*.wav"))]
    with pytest.raises(ConfigError, match="1 source tracks in both .*pkg3/z.ogg"):
        track_change.crossfit_folds(data, cfg)
    one = load_config([CONFIGS[1]], overrides=[f"data.train_dir={a}", "track.crossfit=true"])
    with pytest.raises(ConfigError, match="two or more training folders"):
        track_change.crossfit_folds(data, one)


def test_a_crossfit_detector_trains_saves_and_averages_its_fold_embeddings(tmp_path):
    import train
    from boundaries.model import boosted
    from boundaries.model.checkpoints import load_model

    a, b = _fold_folders(tmp_path, [["pkg1/x.ogg"], ["pkg2/y.ogg"]])
    (tmp_path / "val").mkdir()
    _tracky_mix(tmp_path / "val" / "mix_0.wav", seed=99)
    run = tmp_path / "run"
    args = [*CONFIGS, *sets(tmp_path, a, **{
        "track.kind": "track_change", "track.embed_steps": 3, "track.max_iter": 15,
        "track.crossfit": True, "data.extra_train_dirs": f"[{b}]"}),
        "--val-data", str(tmp_path / "val"), "--run-dir", str(run)]
    assert train.main(args) == 0
    model, cfg, state = load_model(run / "best.pt")
    assert cfg.track.crossfit and len(model.networks) == 2 and len(state["fold_embeddings"]) == 1
    first, second = (n.state for n in model.networks)
    assert first.keys() == second.keys()  # two embeddings, trained on different folds:
    assert not all(np.allclose(first[k], second[k]) for k in first)
    mel = np.random.default_rng(2).standard_normal((cfg.features.n_mels, 2000)).astype(np.float32)
    rows = [track_detector.row_features(mel, n, fps=cfg.fps)[0] for n in model.networks]
    assert not np.allclose(*rows, equal_nan=True)  # the two passes see different distances
    assert np.allclose(model.row_probabilities(mel), model.probabilities_of_rows(rows))
    model.context_trees = model.sequence = None  # the first stage alone: a plain mean
    first = [boosted.predict_proba(model.trees, X) for X in rows]
    assert np.allclose(model.row_probabilities(mel), np.mean(first, axis=0))

    reuse = [*args[:-1], str(tmp_path / "reuse"),
             "--set", f"track.embedding_from={run / 'best.pt'}"]
    assert train.main(reuse) == 0  # both fold embeddings reused, only the trees fitted again
    again, _, _ = load_model(tmp_path / "reuse" / "best.pt")
    assert len(again.networks) == 2 and all(
        np.array_equal(a.state[k], b.state[k])
        for a, b in zip(again.networks, model.networks) for k in a.state)


def test_recall_by_kind_reads_each_mix_manifest_and_skips_files_without_one(tmp_path):
    import json
    from types import SimpleNamespace

    from boundaries.score.evaluation import recall_by_kind

    (tmp_path / "val").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"clips": [{
        "file": "val/a.ogg", "transitions": [{"time_s": 10.0, "kind": "cut"},
                                             {"time_s": 40.0, "kind": "linear"},
                                             {"time_s": 70.0, "kind": "linear"}]}]}))
    mixes = [SimpleNamespace(audio_path=tmp_path / "val" / "a.ogg"),
             SimpleNamespace(audio_path=tmp_path / "elsewhere" / "b.ogg")]
    by_kind = recall_by_kind(mixes, [np.array([10.2, 42.0, 90.0]), np.array([5.0])])
    assert by_kind == {"cut": {"n": 1, "0.5": 1.0, "3.0": 1.0},
                       "linear": {"n": 2, "0.5": 0.0, "3.0": 0.5}}
    assert recall_by_kind(mixes[1:], [np.array([5.0])]) == {}


def test_its_networks_train_where_train_device_says():
    """``train.device`` picks where the embedding, sequence stage and locators train (autocast
    only on a GPU); asking for CUDA without one is one clear error, not a silent CPU run."""
    import torch

    from boundaries.config import Config
    from boundaries.errors import BoundariesError

    cfg = Config()
    on_cpu = cfg.replace(train=dataclasses.replace(cfg.train, device="cpu", amp=True))
    assert track_change.torch_device(on_cpu) == {"device": torch.device("cpu"), "amp": False}
    if torch.cuda.is_available():
        assert track_change.torch_device(cfg)["device"].type == "cuda"
        return
    assert track_change.torch_device(cfg)["device"].type == "cpu"  # auto
    on_cuda = cfg.replace(train=dataclasses.replace(cfg.train, device="cuda"))
    with pytest.raises(BoundariesError, match="no CUDA GPU"):
        track_change.torch_device(on_cuda)


def test_locators_trained_beside_the_other_stages_give_the_same_checkpoint(trained):
    """data.jobs 2: the locators and the sequence stage train in worker processes while the
    trees fit; every array of the checkpoint equals the one trained with everything in turn
    (data.jobs 1)."""
    import train
    from boundaries.model.checkpoints import read_checkpoint

    tmp, _ = trained
    states = {}
    for jobs in (1, 2):
        run = tmp / f"run_jobs{jobs}"
        assert train.main([*CONFIGS, *sets(tmp, tmp / "train", **{
            "track.kind": "track_change", "track.embed_steps": 3, "track.max_iter": 15,
            "track.locator_steps": 3, "track.locator_seeds": 2, "track.locator_weights": [1.0],
            "track.sequence_steps": 2,
            "data.jobs": jobs}), "--val-data", str(tmp / "val"), "--run-dir", str(run)]) == 0
        state, _ = read_checkpoint(run / "best.pt")
        state["config"]["data"].pop("jobs")
        states[jobs] = dict(_flat(state))
    assert any(key.startswith("/locator") for key in states[2])
    assert any(key.startswith("/sequence") for key in states[2])
    assert states[1].keys() == states[2].keys()
    for key, value in states[1].items():
        np.testing.assert_array_equal(np.asarray(states[2][key]), np.asarray(value), err_msg=key)


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}/{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _flat(value, f"{prefix}[{i}]")
    else:
        yield prefix, tree


def test_a_chooser_survives_the_checkpoint_and_picks_among_the_humps_candidates(trained, tmp_path):
    from boundaries import workflows
    from boundaries.detection import chooser, inference
    from boundaries.model.checkpoints import load_model

    tmp, run = trained
    model, cfg, _ = load_model(run / "best.pt")
    train_data, _ = workflows.load_annotated(tmp / "train", cfg, progress=False)
    model.placement = track_change.fit_placement(train_data, model.fps, cfg, log=lambda _: None)
    n = chooser.N_FEATURES
    coef = np.zeros(n)
    _tracky_mix(tmp_path / "mix.wav", seed=5, boundaries_s=(20.0,), total_s=40.0)
    mel = workflows.load_annotated(tmp_path, cfg, progress=False)[0][0].mel
    curve = np.zeros(mel.shape[1], dtype=np.float32)
    curve[int(12 * model.fps):int(24 * model.fps)] = 0.5  # a broad hump around 14 s
    plain = model.refine(mel, [14.0])
    for toward in (0.0, 1.0):  # a tie keeps the plain placement; the other picks the right
        coef[1] = toward
        model.chooser = chooser.Chooser({"mean": np.zeros(n), "scale": np.ones(n),
                                         "coef": coef, "intercept": np.zeros(1)})
        again = track_detector.TrackChangeDetector.from_state(
            model.state(), model.fps, cfg.features.n_mels, model.columns, model.placing)
        np.testing.assert_array_equal(again.chooser.state["coef"], coef)
        moved = again.refine(mel, [14.0], curve, [0.5])
        local = placement.LocalFrames(mel, model.fps)
        cands = chooser.candidates(local, chooser.hump(curve, 14.0, 0.5, model.fps),
                                   model.placement, model.locator, model.placing, curve,
                                   model.fps)
        assert set(cands) == {"base", "right"}
        expected = plain if toward == 0 else [cands["right"].placed_s]
        np.testing.assert_array_equal(moved, expected)
    assert again.refine(mel, [14.0]) == pytest.approx(plain)  # no curve: plain placement
    _, times, _ = inference.boundaries_for(again, mel, cfg, "cpu")
    assert len(times) >= 1


def _mixes_with_manifest(tmp, seed):
    """Train and val folders of tracky mixes, and a make_mixes.py-style manifest above them that
    records the first transition as an 8-s linear crossfade."""
    import json

    clips = []
    for split, n in (("train", 4), ("val", 1)):
        (tmp / split).mkdir()
        for i in range(n):
            _tracky_mix(tmp / split / f"mix_{i}.wav", seed=seed + 10 * (split == "val") + i)
            clips.append({"file": f"{split}/mix_{i}.wav", "transitions": [
                {"time_s": 14.0, "kind": "linear", "overlap_s": 8.0},
                {"time_s": 27.0, "kind": "cut", "overlap_s": 0.0}]})
    (tmp / "manifest.json").write_text(json.dumps({"clips": clips}))


def _overlap_args(tmp):
    return [*CONFIGS, *sets(tmp, tmp / "train", **{
        "track.kind": "track_change", "track.embed_steps": 2, "track.max_iter": 5,
        "track.embed_positives": "stretch", "track.overlap_context": True}),
        "--val-data", str(tmp / "val"), "--run-dir", str(tmp / "run")]


def test_overlap_context_fits_overlap_trees_whose_columns_the_stacked_trees_read(tmp_path):
    import train
    from boundaries.model import boosted, overlap
    from boundaries.model.checkpoints import export_model, load_model

    _mixes_with_manifest(tmp_path, seed=300)
    assert train.main(_overlap_args(tmp_path)) == 0
    export_model(tmp_path / "run" / "best.pt", tmp_path / "shipped.pt")  # kept when shipped
    model, cfg, _ = load_model(tmp_path / "shipped.pt")
    assert cfg.track.overlap_context and model.overlap_trees is not None
    mel = np.random.default_rng(0).normal(size=(cfg.features.n_mels, 1500)).astype(np.float32)
    base, names = track_detector.descriptor_columns(mel, fps=model.fps, columns=model.columns)
    X = track_detector.with_embedding_columns(base, names, mel, model.network, fps=model.fps,
                                              columns=model.columns)[0]
    probs = boosted.predict_proba(model.trees, X)
    inside = boosted.predict_proba(model.overlap_trees, X)
    rows = track_detector.stacked_rows(X, probs, inside, fps=model.fps)
    assert rows.shape[1] == track_detector.stacked_rows(X, probs).shape[1] + len(overlap.NAMES)
    stacked = model.stage_probabilities([X])["stacked"]
    np.testing.assert_allclose(stacked, boosted.predict_proba(model.context_trees, rows))


def test_overlap_context_refuses_training_mixes_that_no_manifest_lists(tmp_path, capsys):
    import train

    _mixes_with_manifest(tmp_path, seed=310)
    (tmp_path / "manifest.json").unlink()
    assert train.main(_overlap_args(tmp_path)) != 0
    err = capsys.readouterr().err
    assert "track.overlap_context needs each training mix's overlaps" in err
    assert "mix_0.wav" in err and "Traceback" not in err
