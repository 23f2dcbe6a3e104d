"""The distances behind training.oos_signals' Mahalanobis rows (synthetic data, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from training.oos_signals import Distances


def test_distances_grow_away_from_the_classes() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(300, 4)) + np.array([5.0, 0, 0, 0])
    b = rng.normal(0.0, 1.0, size=(300, 4)) - np.array([5.0, 0, 0, 0])
    g = Distances.fit(np.vstack([a, b]), ["a"] * 300 + ["b"] * 300)
    near, between, far = (
        np.array([[5.0, 0, 0, 0]]),
        np.array([[0.0, 0, 0, 0]]),
        np.array([[0.0, 9.0, 0, 0]]),
    )
    d = [float(g.distance(x)[0]) for x in (near, between, far)]
    assert d[0] < 1.0 < d[1] < d[2], d
    # Relative: minus the distance to one Gaussian over all the data (Ren et al. 2021): a
    # point at a class centre stays the least novel; the others keep a positive excess.
    r = [float(g.relative(x)[0]) for x in (near, between, far)]
    assert r[0] < 1.0 < min(r[1], r[2]), r
    background = g.distance(far) - g.relative(far)
    centred = far - np.vstack([a, b]).mean(axis=0)
    precision = g.background.tensors["precision"].numpy()
    expected = np.einsum("nd,de,ne->n", centred, precision, centred)[0]
    assert background[0] == pytest.approx(expected)
