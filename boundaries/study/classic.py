"""The classic track of the imbalance study: frame features, imbalanced-learn samplers and
scikit-learn classifiers.

A frame-wise classifier sees one frame at a time, so each frame's vector must already show a
change: per band (the log-mel pooled to ``n_bands``, z-scored per file) the mean of the
``w`` seconds after the frame minus the mean of the ``w`` seconds before it, and the distance and
cosine distance between the two, for each window ``w``, plus the frame's loudness. Window sums
use cumulative sums, so a feature costs O(1) per frame.

Samplers touch the training frames only; validation frames are scored as they are.
"""

import numpy as np

from boundaries.score.evaluation import frame_labels
from boundaries.signal import timebase

# imbalanced-learn samplers by study name; each takes the random seed (where it has one)
SAMPLER_NAMES = ("none", "random_over", "random_under", "smote", "borderline_smote", "svm_smote",
                 "adasyn", "nearmiss1", "nearmiss2", "tomek", "enn", "smote_enn", "smote_tomek")
CLASSIFIER_NAMES = ("logreg", "forest", "tree", "adaboost", "mlp", "balanced_forest",
                    "easy_ensemble", "balanced_bagging")


def make_sampler(name: str, seed: int):
    from imblearn import combine, over_sampling, under_sampling

    factories = {
        "none": lambda: None,
        "random_over": lambda: over_sampling.RandomOverSampler(random_state=seed),
        "random_under": lambda: under_sampling.RandomUnderSampler(random_state=seed),
        "smote": lambda: over_sampling.SMOTE(random_state=seed),
        "borderline_smote": lambda: over_sampling.BorderlineSMOTE(random_state=seed),
        "svm_smote": lambda: over_sampling.SVMSMOTE(random_state=seed),
        "adasyn": lambda: over_sampling.ADASYN(random_state=seed),
        "nearmiss1": lambda: under_sampling.NearMiss(version=1),
        "nearmiss2": lambda: under_sampling.NearMiss(version=2),
        "tomek": lambda: under_sampling.TomekLinks(),
        "enn": lambda: under_sampling.EditedNearestNeighbours(),
        "smote_enn": lambda: combine.SMOTEENN(random_state=seed),
        "smote_tomek": lambda: combine.SMOTETomek(random_state=seed),
    }
    if name not in factories:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLER_NAMES)}")
    return factories[name]()


def make_classifier(name: str, seed: int):
    from imblearn import ensemble
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    factories = {
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "forest": lambda: RandomForestClassifier(100, min_samples_leaf=2, n_jobs=1,
                                                 random_state=seed),
        "tree": lambda: DecisionTreeClassifier(max_depth=10, min_samples_leaf=5,
                                               random_state=seed),
        "adaboost": lambda: AdaBoostClassifier(n_estimators=100, random_state=seed),
        "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(
            (64, 32), max_iter=300, early_stopping=True, random_state=seed)),
        # imbalanced-learn's balanced ensembles: each member sees a balanced bootstrap
        "balanced_forest": lambda: ensemble.BalancedRandomForestClassifier(
            100, min_samples_leaf=2, sampling_strategy="all", replacement=True, bootstrap=False,
            n_jobs=1, random_state=seed),
        "easy_ensemble": lambda: ensemble.EasyEnsembleClassifier(10, random_state=seed),
        "balanced_bagging": lambda: ensemble.BalancedBaggingClassifier(
            DecisionTreeClassifier(min_samples_leaf=2), n_estimators=20, random_state=seed),
    }
    if name not in factories:
        raise ValueError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIER_NAMES)}")
    return factories[name]()


def _pool_bands(mel: np.ndarray, n_bands: int) -> np.ndarray:
    groups = np.array_split(np.arange(mel.shape[0]), n_bands)
    return np.stack([mel[g].mean(axis=0) for g in groups])


def _window_means(x: np.ndarray, width: int):
    """Mean of the ``width`` frames before each frame and of the ``width`` after it (edges use
    what exists)."""
    n = x.shape[1]
    csum = np.concatenate([np.zeros((len(x), 1)), np.cumsum(x, axis=1, dtype=np.float64)], axis=1)
    idx = np.arange(n)
    lo, hi = np.maximum(idx - width, 0), np.minimum(idx + 1 + width, n)
    before = (csum[:, idx] - csum[:, lo]) / np.maximum(idx - lo, 1)
    after = (csum[:, hi] - csum[:, idx + 1]) / np.maximum(hi - idx - 1, 1)
    return before, after


def frame_features(mel: np.ndarray, fps: float, windows_s=(1.0, 4.0),
                   n_bands: int = 16) -> np.ndarray:
    """``[n_frames, n_features]`` float32: per window, after-minus-before band means, their
    Euclidean and cosine distances; then the frame's loudness."""
    bands = _pool_bands(mel, n_bands)
    bands = (bands - bands.mean(axis=1, keepdims=True)) / (bands.std(axis=1, keepdims=True) + 1e-6)
    columns = []
    for w in windows_s:
        before, after = _window_means(bands, timebase.frames_in(w, fps, 1))
        diff = after - before
        cosine = 1 - np.sum(before * after, axis=0) / (
            np.linalg.norm(before, axis=0) * np.linalg.norm(after, axis=0) + 1e-9)
        columns += [diff, np.linalg.norm(diff, axis=0)[None], cosine[None]]
    columns.append(bands.mean(axis=0)[None])
    return np.concatenate(columns).T.astype(np.float32)


def training_frames(data, cfg, *, stride: int, max_frames: int, seed: int,
                    windows_s=(1.0, 4.0)):
    """Features and labels of every ``stride``-th training frame; a uniform random subsample of
    at most ``max_frames`` (the class ratio kept) bounds the memory of kNN samplers."""
    fps = cfg.fps
    xs, ys = [], []
    for track in data:
        truth = frame_labels(track, cfg).astype(np.int64)
        xs.append(frame_features(track.mel, fps, windows_s)[::stride])
        ys.append(truth[::stride])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_frames, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def fit(x, y, sampler_name: str, classifier_name: str, seed: int):
    """Resample (training frames only) and fit; returns the model and the resampled labels."""
    sampler = make_sampler(sampler_name, seed)
    if sampler is not None:
        x, y = sampler.fit_resample(x, y)
    model = make_classifier(classifier_name, seed)
    model.fit(x, y)
    return model, y


def validation_features(data, cfg, windows_s=(1.0, 4.0)) -> list:
    """Frame features of every frame of every file (nothing resampled, nothing dropped)."""
    fps = cfg.fps
    return [frame_features(t.mel, fps, windows_s) for t in data]


def predict(model, features) -> list:
    """Positive-class probability of every frame of every file: the activations."""
    return [model.predict_proba(f)[:, 1].astype(np.float32) for f in features]
