"""ConvexDA (rewardlab.data.augment): the kept augmentations are exactly the convex-hull vertices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from rewardlab.data.augment import convex_da, hull_vertices, in_convex_hull
from rewardlab.data.records import PreferencePair

# original at the centre; candidates: four corners, two interior points, a point on an edge, a repeated corner
SQUARE = np.array(
    [
        [0.0, 0.0],  # the original pair
        [1.0, 1.0],
        [0.2, 0.1],
        [-1.0, 1.0],
        [1.0, 0.0],  # on the edge between (1, -1) and (1, 1): not a vertex
        [-1.0, -1.0],
        [0.5, 0.5],
        [1.0, -1.0],
        [1.0, 1.0],  # a copy of candidate 0
    ]
)
CORNERS = [0, 2, 4, 6]  # candidate indices (row − 1) of the first copy of each corner


def pair(tag: str) -> PreferencePair:
    return PreferencePair(prompt=f"prompt {tag}", chosen=f"good {tag}", rejected=f"bad {tag}")


def test_kept_augmentations_are_the_hull_vertices_of_a_constructed_case():
    original = pair("o")
    candidates = [pair(str(j)) for j in range(len(SQUARE) - 1)]
    out = convex_da([original], [candidates], [SQUARE])
    assert out.kept == [CORNERS]
    assert out.pairs == [original] + [candidates[j] for j in CORNERS]
    # the criterion, checked directly: no kept candidate is a convex combination of the other points,
    # every dropped one is (or repeats a kept one)
    for j in range(len(candidates)):
        others = np.delete(SQUARE, 1 + j, axis=0)
        others = others[~np.all(others == SQUARE[1 + j], axis=1)]
        assert in_convex_hull(SQUARE[1 + j], others) == (j not in CORNERS and j != 7)


def test_agrees_with_scipy_convex_hull_on_random_clouds():
    rng = np.random.default_rng(1)
    for _ in range(10):
        points = rng.normal(size=(15, 2))
        assert set(np.flatnonzero(hull_vertices(points))) == set(ConvexHull(points).vertices)
        points3 = rng.normal(size=(20, 3))
        assert set(np.flatnonzero(hull_vertices(points3))) == set(ConvexHull(points3).vertices)


def test_high_dimensional_embeddings_need_a_projection():
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.normal(size=(16, 2)))  # an isometric embedding of the plane in 16-D
    embedded = SQUARE @ basis.T + 1e-9 * rng.normal(size=(len(SQUARE), 16))
    candidates = [pair(str(j)) for j in range(len(SQUARE) - 1)]
    assert convex_da([pair("o")], [candidates], [embedded], dims=2).kept == [CORNERS]
    # without it, nine points in general position in 16-D are all vertices: the criterion keeps all distinct ones
    loose = convex_da([pair("o")], [candidates], [embedded + 1e-3 * rng.normal(size=embedded.shape)])
    assert loose.kept == [list(range(8))]


def test_several_pairs_and_bad_shapes():
    a, b = pair("a"), pair("b")
    line = np.array([[0.0], [1.0], [0.5], [-2.0]])  # 1-D: only the two ends are vertices
    out = convex_da([a, b], [[pair("a1"), pair("a2"), pair("a3")], []], [line, np.zeros((1, 4))])
    assert out.kept == [[0, 2], []]
    assert [p.prompt for p in out.pairs] == ["prompt a", "prompt b", "prompt a1", "prompt a3"]
    with pytest.raises(ValueError, match="1 \\+ 2 rows"):
        convex_da([a], [[pair("x"), pair("y")]], [np.zeros((2, 3))])
    with pytest.raises(ValueError, match="one list of augmentations"):
        convex_da([a, b], [[]], [np.zeros((1, 2))])
