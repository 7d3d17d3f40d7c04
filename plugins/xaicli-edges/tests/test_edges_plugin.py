import numpy as np
import pytest
from xaicli_edges import EdgeBaseline


def test_edges_mark_the_boundary_of_a_square_only():
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 4:12, 4:12] = 1.0
    maps = EdgeBaseline().explain(None, image, None)
    assert maps.shape == (1, 16, 16) and maps.dtype == np.float32
    assert maps[0, 8, 8] == 0.0  # flat inside
    assert maps[0, 0, 0] == 0.0  # flat outside
    assert maps[0, 8, 4] > 0 and maps[0, 4, 8] > 0  # on the edges


def test_edges_is_registered_with_xaicli():
    from xaicli import plugins

    entry = plugins.entry("explainers", "edges")
    assert entry.package == "xaicli-edges" and not entry.builtin
    assert plugins.load("explainers", "edges") is EdgeBaseline


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        EdgeBaseline(ksize=4)


def test_edges_meets_the_xaicli_contract():
    """xaicli.testing.check_explainer: what every explainer must do, checked in the plugin's own tests."""
    from xaicli.testing import check_explainer

    maps = check_explainer(EdgeBaseline, ksize=3)
    assert maps.shape == (9, 16, 16)
