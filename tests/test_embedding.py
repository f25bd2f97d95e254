import numpy as np
import pytest
import torch

from boundaries.model import embedding, embedding_features

FPS = 22050 / 512


def test_distances_peak_where_the_track_changes():
    proj = np.zeros((4, 400))
    proj[0, :200] = 1.0  # positions 0.37 s each: the "track" changes at 74.3 s
    proj[1, 200:] = 1.0
    n_out = 640  # descriptor frames of 10 mel frames: 148.6 s, as long as proj
    dist = embedding_features.embedding_distances(proj, n_out=n_out, out_stride_frames=10, fps=FPS)
    change_s = 200 * embedding_features.STRIDE * embedding_features.TIME_POOL / FPS
    # with a 1 s gap each side, both sides are pure for +-1 s around the change: a plateau
    plateau_s = (np.flatnonzero(dist[:, 1] > 0.999) * 10 + 4.5) / FPS
    assert abs(plateau_s.mean() - change_s) < 0.5 and np.ptp(plateau_s) < 2.5
    assert dist[:, 1].max() > 0.9 and dist[10, 1] < 1e-6
    assert dist[0].max() == 0  # no left side at time 0: no evidence


def _trained_looking_network(n_mels=16, width=16):
    """A TrackEmbedding with batch-norm statistics that are not the identity, in eval mode."""
    torch.manual_seed(0)
    model = embedding.TrackEmbedding(n_mels=n_mels, width=width)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 1, n_mels, 96) * 2 + 0.5)
    return model.eval()


@pytest.mark.parametrize("width", [16, 8])  # track.embed_width
def test_numpy_network_equals_the_torch_module(width):
    model = _trained_looking_network(width=width)
    x = np.random.default_rng(0).normal(size=(16, 203)).astype(np.float32)  # odd: pooling drops
    with torch.no_grad():
        expected = model.positions(torch.from_numpy(x[None, None]))[0].numpy()
    network = embedding_features.EmbeddingNetwork.from_module(model)
    np.testing.assert_allclose(network.positions(x), expected, rtol=1e-4, atol=1e-5)


def test_numpy_network_rejects_another_band_count():
    from boundaries.errors import BoundariesError

    state = embedding_features.EmbeddingNetwork.from_module(_trained_looking_network()).state
    with pytest.raises(BoundariesError, match="mel bands"):
        embedding_features.EmbeddingNetwork(state, n_mels=80)


def test_chunked_projections_equal_one_pass():
    network = embedding_features.EmbeddingNetwork.from_module(_trained_looking_network())
    mel = np.random.default_rng(0).normal(size=(16, 1200)).astype(np.float32) * 10 - 50
    whole = embedding_features.position_projections(network, mel, chunk=10_000)
    chunked = embedding_features.position_projections(network, mel, chunk=128)
    assert whole.shape == (64, 1200 // embedding_features.TIME_POOL // embedding_features.STRIDE)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_info_nce_prefers_matching_pairs():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    other = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    assert embedding.info_nce(z, z) < embedding.info_nce(z, other)


def test_solo_spans_leave_out_the_fades():
    record = {"segments": [{"source": "pkg/a.ogg", "start_s": 0.0, "stop_s": 62.0},
                           {"source": "pkg/b.ogg", "start_s": 58.0, "stop_s": 120.0}],
              "transitions": [{"time_s": 60.0, "kind": "linear", "overlap_s": 4.0}]}
    spans = embedding.solo_spans(record, fps=10.0)
    assert spans == [("pkg/a.ogg", "pkg", 0, 580), ("pkg/b.ogg", "pkg", 620, 1200)]


def test_recurrence_tells_a_returning_section_from_a_new_track():
    from boundaries.model.embedding_features import STRIDE, TIME_POOL, recurrence_features

    fps = 22050 / 512
    pos_s = STRIDE * TIME_POOL / fps
    rng = np.random.default_rng(0)
    # sections of 40 s: A, B, A again (a chorus returns), then C (a new track)
    basis = {name: np.eye(8)[i] for i, name in enumerate("ABC")}
    n_pos = int(40 / pos_s)
    proj = np.hstack([np.tile(basis[name][:, None], n_pos) for name in "ABAC"])
    proj = (proj + 0.05 * rng.standard_normal(proj.shape)).astype(np.float32)
    n_out = int(proj.shape[1] * pos_s * fps / 10)
    feats = recurrence_features(proj, n_out=n_out, out_stride_frames=10, fps=fps)
    row = lambda t: int(t * fps / 10)  # noqa: E731
    assert feats.shape == (n_out, 4)
    assert feats[row(80.0), 0] > 0.9  # after 80 s: A again, heard before
    assert feats[row(120.0), 0] < 0.2  # after 120 s: C, never heard before
    assert feats[row(40.0), 1] > 0.9  # before 40 s: A, heard again later
    assert feats[0, 0] == feats[-1, 1] == -2.0  # nothing before / after the file's edges
    blocked = recurrence_features(proj, n_out=n_out, out_stride_frames=10, fps=fps, block=7)
    np.testing.assert_allclose(blocked, feats, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_training_tells_tracks_apart(device):
    """Eight "tracks", each its own spectral shape under noise: InfoNCE training brings two
    excerpts of one track closer than excerpts of two tracks (on a GPU too, under autocast)."""
    rng = np.random.default_rng(0)
    shapes = rng.normal(0, 1, (8, 80, 1))
    clips = [(s + 0.5 * rng.normal(0, 1, (80, 400))).astype(np.float32) for s in shapes]
    spans = [[(f"track{i}", f"package{i % 2}", 0, 400)] for i in range(8)]
    sampler = embedding.PairSampler(clips, spans, seed=0)
    model = embedding.train_embedding(sampler, steps=40, width=8, log=lambda *_: None,
                                      device=torch.device(device), amp=device == "cuda")
    crop = embedding_features.CROP_FRAMES
    excerpts = np.stack([c[:, s:s + crop] for c in clips for s in (0, 250)])[:, None]
    with torch.no_grad():
        z = model.cpu()(torch.from_numpy(excerpts)).numpy().reshape(8, 2, -1)
    same = np.mean([z[i, 0] @ z[i, 1] for i in range(8)])
    other = np.mean([z[i, 0] @ z[j, 1] for i in range(8) for j in range(8) if i != j])
    assert same > other + 0.5  # untrained: 0.14 apart
