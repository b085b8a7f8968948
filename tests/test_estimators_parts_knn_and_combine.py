"""The k-NN part's own rows (parts.NearestRows: kept as float32, the checks on stored ones) and the
registry's helpers (parts.combine, parts.needs_network) at the cases the Scorer does not reach."""

import numpy as np
import pytest

from deepuad.estimators import parts
from deepuad.estimators.parts import NearestRows


def test_combine_one_part_is_its_raw_value_and_unstandardised_parts_add_up():
    values = [np.array([1.0, 5.0], dtype=np.float32), np.array([2.0, 0.0])]
    one = parts.combine(values[:1], ("knn",), np.array([10.0]), np.array([4.0]), np.ones(1))
    assert one.dtype == np.float64
    np.testing.assert_array_equal(one, [1.0, 5.0])  # neither centred nor scaled
    both = parts.combine(values, ("range", "range"), np.zeros(2), np.ones(2), np.ones(2))
    np.testing.assert_array_equal(both, [3.0, 5.0])  # no standardised part: the sum


def test_needs_network_says_no_for_an_unknown_part():
    assert parts.needs_network(("knn", "l2")) and parts.needs_network(("cosine",))
    assert not parts.needs_network(("knn", "range", "iforest"))
    assert not parts.needs_network(("bogus",))


def test_knn_part_keeps_its_rows_as_float32_so_a_restored_part_scores_as_the_fitted_one():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(40, 3)) * (1.0 + 1e-3 * np.pi)  # float64 values float32 cannot hold
    part = NearestRows(4).fit(reference, 0)
    assert part.reference_.dtype == np.float32
    restored = NearestRows(4).restore(part.state(), 3)
    X = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(restored.values(X, {}), part.values(X, {}))


@pytest.mark.parametrize("rows", [
    np.zeros((5, 2), np.float32),  # another width
    np.zeros((0, 3), np.float32),  # no rows
    np.zeros(3, np.float32),  # not a table
    np.zeros((5, 3, 1), np.float32),  # one dimension too many
    np.array([[0.0, np.nan, 1.0]], np.float32),  # not finite
])
def test_knn_part_refuses_rows_fit_could_not_have_kept(rows):
    with pytest.raises(ValueError, match=r"^scorer k-NN rows have shape \(.*\), expected \(>= 1, 3\) finite values$"):
        NearestRows(4).restore({"knn/reference": rows}, 3)
