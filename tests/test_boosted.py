import numpy as np
import pytest

from boundaries.model import boosted


@pytest.mark.parametrize("with_nan", [False, True])
@pytest.mark.parametrize("compiled_from_rows", [0, 10**9])  # the numba walk, the numpy walk
def test_exported_trees_equal_predict_proba(rng, with_nan, compiled_from_rows, monkeypatch):
    monkeypatch.setattr(boosted, "COMPILED_FROM_ROWS", compiled_from_rows)
    monkeypatch.setattr(boosted, "_rows_walked", 0)
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = rng.normal(size=(600, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.normal(size=600) > 0.8).astype(int)
    if with_nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    trees = boosted.export_trees(model)
    X_new = rng.normal(size=(200, 5))
    if with_nan:
        X_new[rng.random(X_new.shape) < 0.1] = np.nan
    np.testing.assert_allclose(boosted.predict_proba(trees, X_new),
                               model.predict_proba(X_new)[:, 1], rtol=1e-9, atol=1e-12)


def test_trees_that_read_a_column_the_rows_lack_are_refused(rng):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = rng.normal(size=(300, 4))
    trees = boosted.export_trees(HistGradientBoostingClassifier(max_iter=5, random_state=0)
                                 .fit(X, (X[:, 3] > 0).astype(int)))
    with pytest.raises(ValueError, match="column 3 of rows with 3 columns"):
        boosted.predict_proba(trees, X[:, :3])
    assert boosted.predict_proba(trees, np.hstack([X, X])).shape == (300,)  # extra columns: fine
