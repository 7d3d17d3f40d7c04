"""Metrics against hand-computed values and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xaicli import plugins
from xaicli.errors import UsageError
from xaicli.metrics import nonnegative
from xaicli.metrics.consistency import Consistency, ConsistencyAccumulator
from xaicli.metrics.faithfulness import Deletion, Insertion, auc, ranking
from xaicli.metrics.randomization import (
    RandomizationSpearman,
    RandomizationSSIM,
    average_ranks,
    spearman,
    ssim,
)
from xaicli.metrics.region import BackgroundRatio, Entropy, PointingHit, RoiRatio

REGION = np.zeros((4, 4), bool)
REGION[:2, :2] = True  # top-left quarter


def test_roi_and_background_ratio_hand_computed():
    m = np.zeros((4, 4))
    m[0, 0] = 3.0  # inside
    m[3, 3] = 1.0  # outside
    m[1, 3] = -5.0  # negative: dropped by the positive part, counted by abs
    assert RoiRatio().score(m, region=REGION) == pytest.approx(3 / 4)
    assert BackgroundRatio().score(m, region=REGION) == pytest.approx(1 / 4)
    assert RoiRatio(normalization="abs").score(m, region=REGION) == pytest.approx(3 / 9)
    assert RoiRatio().column("Face") == "FaceRatio"


def test_minmax_normalization_removes_an_offset():
    m = np.full((4, 4), 10.0)
    m[0, 0] = 14.0  # a RISE-like map: large constant, one bump inside the region
    assert RoiRatio().score(m, region=REGION) == pytest.approx((14 + 3 * 10) / (14 + 15 * 10))
    assert RoiRatio(normalization="minmax").score(m, region=REGION) == 1.0
    assert Entropy(normalization="minmax").score(m) == pytest.approx(0.0)
    np.testing.assert_allclose(nonnegative(-m, "minmax").min(), 0.0)


def test_flat_and_zero_maps_score_like_chance():
    for m in (np.ones((4, 4)), np.zeros((4, 4)), -np.ones((4, 4))):
        assert RoiRatio().score(m, region=REGION) == pytest.approx(0.25)
        assert Entropy().score(m) == pytest.approx(1.0)
        assert PointingHit().score(m, region=REGION) == pytest.approx(0.25)


def test_entropy_hand_computed():
    m = np.zeros((4, 4))
    m[0, 0] = 1.0
    assert Entropy().score(m) == pytest.approx(0.0)
    m[0, 1] = 1.0  # two equal pixels: log 2 / log 16 = 0.25
    assert Entropy().score(m) == pytest.approx(0.25)
    m[0, 1] = 3.0  # p = 1/4, 3/4
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(16)
    assert Entropy().score(m) == pytest.approx(expected)


def test_nan_and_inf_count_as_zero():
    m = np.zeros((4, 4))
    m[0, 0] = 2.0
    m[3, 3] = np.nan
    m[2, 2] = np.inf
    for metric in (RoiRatio(), BackgroundRatio(), PointingHit()):
        assert np.isfinite(metric.score(m, region=REGION))
    assert RoiRatio().score(m, region=REGION) == 1.0
    assert Entropy().score(m) == pytest.approx(0.0)


def test_pointing_hit_unique_ties_and_empty_region():
    m = np.zeros((4, 4))
    m[1, 1] = 1.0
    assert PointingHit().score(m, region=REGION) == 1.0
    m[1, 1], m[3, 3] = 0.0, 1.0
    assert PointingHit().score(m, region=REGION) == 0.0
    m[0, 0] = 1.0  # tie: one maximum inside, one outside
    assert PointingHit().score(m, region=REGION) == 0.5
    empty = np.zeros((4, 4), bool)
    assert math.isnan(PointingHit().score(m, region=empty))
    assert math.isnan(RoiRatio().score(m, region=empty))
    assert math.isnan(BackgroundRatio().score(m, region=empty))


def test_pointing_hit_tolerance_grows_region():
    m = np.zeros((8, 8))
    m[3, 3] = 1.0
    region = np.zeros((8, 8), bool)
    region[:2, :2] = True
    assert PointingHit().score(m, region=region) == 0.0
    assert PointingHit(tolerance=3).score(m, region=region) == 1.0


def test_region_is_resized_to_the_map():
    m = np.zeros((4, 4))
    m[0, 0] = 1.0
    big = np.zeros((16, 16), bool)
    big[:8, :8] = True
    assert RoiRatio().score(m, region=big) == 1.0
    assert PointingHit().score(m, region=big) == 1.0


def test_region_metric_without_region_is_a_usage_error():
    with pytest.raises(UsageError):
        RoiRatio().score(np.ones((4, 4)))
    with pytest.raises(UsageError):
        RoiRatio(normalization="square")


# ------------------------------------------------------------------------------ faithfulness


def _region_model(region):
    """Score = mean intensity inside the region: only those pixels matter."""
    region = region.astype(np.float32)

    def model_fn(batch):
        return (batch[..., 0] * region).sum(axis=(1, 2)) / region.sum()

    return model_fn


def test_deletion_and_insertion_reward_the_true_region():
    rng = np.random.default_rng(0)
    region = np.zeros((16, 16), bool)
    region[4:8, 4:8] = True
    image = np.ones((16, 16, 1), np.float32)
    model_fn = _region_model(region)
    good = region.astype(float) + 0.01 * rng.random((16, 16))
    bad = (~region).astype(float) + 0.01 * rng.random((16, 16))
    random = rng.random((16, 16))
    d = Deletion(steps=16, baseline="black")
    ins = Insertion(steps=16, baseline="black")
    assert d.score(good, image=image, model_fn=model_fn) < d.score(random, image=image, model_fn=model_fn)
    assert d.score(random, image=image, model_fn=model_fn) < d.score(bad, image=image, model_fn=model_fn)
    assert ins.score(good, image=image, model_fn=model_fn) > ins.score(bad, image=image, model_fn=model_fn)
    # Hand-computed: the 16 region pixels are removed in the first step of 16 (256/16 per step),
    # so the deletion curve is 1, 0, 0, ... and its trapezoidal AUC is (1 + 0) / 2 / 16.
    assert d.score(good, image=image, model_fn=model_fn) == pytest.approx(0.5 / 16)
    curve = d.curve(good, image=image, model_fn=model_fn)
    assert curve.shape == (17,) and curve[0] == 1.0 and curve[-1] == 0.0


def test_faithfulness_batching_does_not_change_the_curve():
    rng = np.random.default_rng(1)
    image = rng.random((8, 8, 3)).astype(np.float32)
    saliency = rng.random((8, 8))

    def model_fn(batch):
        return batch.mean(axis=(1, 2, 3))

    a = Deletion(steps=10, batch_size=3).curve(saliency, image=image, model_fn=model_fn)
    b = Deletion(steps=10, batch_size=64).curve(saliency, image=image, model_fn=model_fn)
    np.testing.assert_allclose(a, b)
    ins = Insertion(steps=10).curve(saliency, image=image, model_fn=model_fn)
    assert ins[-1] == pytest.approx(image.mean(), rel=1e-5)  # every pixel back in


def test_ranking_breaks_ties_randomly_but_reproducibly():
    flat = np.zeros((4, 4))
    a, b = ranking(flat, 0), ranking(flat, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, np.arange(16))  # not raster order
    m = np.arange(16.0)
    assert ranking(m, 0)[0] == 15


def test_auc_trapezoid():
    assert auc(np.array([1.0, 0.0])) == 0.5
    assert auc(np.array([1.0, 1.0, 1.0])) == 1.0


def test_deletion_default_baseline_is_the_blurred_image():
    image = np.zeros((9, 9, 1), np.float32)
    image[4, 4] = 1.0
    saliency = image[:, :, 0].copy()

    def centre(batch):
        return batch[:, 4, 4, 0]

    curve = Deletion(steps=81).curve(saliency, image=image, model_fn=centre)
    assert curve[0] == 1.0 and 0.0 < curve[1] < 0.1  # the peak replaced by its blurred value
    assert Deletion(steps=81, baseline="black").curve(saliency, image=image, model_fn=centre)[1] == 0.0


def test_faithfulness_needs_model_and_image():
    with pytest.raises(UsageError):
        Deletion().score(np.ones((4, 4)))
    with pytest.raises(UsageError):
        Deletion(baseline="purple")


# ------------------------------------------------------------------------------- consistency


def test_consistency_matches_direct_numpy():
    rng = np.random.default_rng(2)
    maps = [rng.random((5, 6)) * rng.choice([1.0, 3.0]) for _ in range(12)]
    truths = ["a", "b", "a", "a", "b", "c", "b", "a", "c", "a", "b", "a"]
    preds = ["a", "b", "a", "b", "b", "a", "b", "a", "a", "a", "b", "a"]  # c is never right
    result = Consistency().score_set(maps, truths, preds)

    expected = {}
    for cls in ("a", "b"):
        cams = np.stack([m / m.max() for m, t, p in zip(maps, truths, preds, strict=True) if t == p == cls])
        mean = cams.mean(axis=0)
        losses = ((cams - mean) ** 2).sum(axis=(1, 2)) / (5 * 6)
        expected[cls] = (losses.mean(), len(cams))
    assert set(result.per_class) == {"a", "b"}
    for cls, (loss, n) in expected.items():
        assert result.per_class[cls][1] == n
        assert result.per_class[cls][0] == pytest.approx(loss, rel=1e-9)
    assert result.overall == pytest.approx(np.mean([v[0] for v in expected.values()]))
    assert result.skipped == 3
    rows = result.rows("gradcam", "positive")
    assert rows[-1]["class"] == "(all)" and rows[-1]["n"] == 9


def test_consistency_identical_maps_is_zero_and_empty_is_nan():
    acc = ConsistencyAccumulator()
    m = np.arange(12.0).reshape(3, 4)
    for _ in range(3):
        acc.add(m, 1, 1)
        acc.add(m * 5, 1, 1)  # same after [0, 1] normalisation
    assert acc.result().overall == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(ConsistencyAccumulator().result().overall)


# ---------------------------------------------------------------------------- randomisation


def test_average_ranks_and_spearman():
    np.testing.assert_array_equal(average_ranks(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])
    a = np.arange(20.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, np.ones(20)))
    rng = np.random.default_rng(3)
    x, y = rng.random(200), rng.random(200)
    rx, ry = average_ranks(x), average_ranks(y)
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_ssim_identity_and_difference():
    rng = np.random.default_rng(4)
    a = rng.random((16, 16))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, rng.random((16, 16))) < 0.3


@pytest.mark.parametrize("shape", [(16, 16), (40, 33)])
def test_ssim_equals_scikit_image_with_the_same_gaussian_window(shape):
    """scikit-image's structural_similarity (Wang et al. 2004 with Gaussian weights sigma 1.5,
    population covariances, K1 0.01, K2 0.03, data range 1): xaicli's value is the mean of that
    SSIM map over every pixel (borders reflected; scikit-image's own mean crops the border). The
    windows differ only in their truncation (3.5 sigma there, 4 sigma in OpenCV): about 1e-5."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(6)
    a = rng.random(shape)
    pairs = [(a, np.clip(a + rng.normal(0, 0.2, shape), 0, 1)), (a, rng.random(shape)), (a, 0.5 * a),
             (a, np.roll(a, 3, axis=1))]
    for x, y in pairs:
        _, full = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, K1=0.01, K2=0.03, full=True)
        assert ssim(x, y) == pytest.approx(float(full.mean()), abs=2e-5)


def test_randomization_metrics_use_the_random_map():
    rng = np.random.default_rng(5)
    m = rng.random((16, 16))
    assert RandomizationSpearman().score(m, random_saliency=m * 2) == pytest.approx(1.0)
    assert RandomizationSSIM().score(m, random_saliency=m * 2) == pytest.approx(1.0)
    assert RandomizationSpearman().score(m, random_saliency=rng.random((16, 16))) < 0.3
    with pytest.raises(UsageError):
        RandomizationSpearman().score(m)


def test_every_registered_metric_loads_and_documents_itself():
    for name in plugins.names("metrics"):
        cls = plugins.load("metrics", name)
        assert cls.name == name
        assert cls.__doc__ and cls.label


def test_lift_is_the_region_share_over_its_area_share():
    from xaicli.metrics.region import Lift

    m = np.zeros((4, 4))
    m[0, 0], m[3, 3] = 3.0, 1.0  # 3/4 of the mass on a region covering 4/16 of the image
    assert Lift().score(m, region=REGION) == pytest.approx((3 / 4) / (4 / 16))
    assert Lift().score(np.ones((4, 4)), region=REGION) == pytest.approx(1.0)  # flat = chance
    assert Lift().score(np.zeros((4, 4)), region=REGION) == pytest.approx(1.0)  # all-zero = flat
    assert math.isnan(Lift().score(m, region=np.zeros((4, 4), bool)))
    small = np.zeros((100, 100), bool)
    small[:10, :10] = True  # 1 % of the image: a share of 0.05 is five times chance
    noise = np.random.default_rng(0).random((100, 100))
    noise[small] *= 5.0
    assert Lift().score(noise, region=small) == pytest.approx(RoiRatio().score(noise, region=small) / 0.01)
    assert Lift().score(noise, region=small) == pytest.approx(5.0 / (0.99 + 0.05), rel=0.05)


def test_pointing_hit_tolerance_follows_the_maps_native_cell():
    """A 4-pixel cell (a CAM upsampled 4x) cannot place its peak closer than half a cell."""
    from xaicli.metrics.region import StrictPointingHit

    m = np.zeros((16, 16))
    m[5, 5] = 1.0  # two pixels beside the region's corner
    region = np.zeros((16, 16), bool)
    region[7:10, 7:10] = True
    assert PointingHit().score(m, region=region) == 0.0  # a pixel-level map: no tolerance
    assert PointingHit().score(m, region=region, cell=4.0) == 0.0  # half a cell is 2: diagonal > 2
    assert PointingHit().score(m, region=region, cell=6.0) == 1.0  # half a cell is 3
    assert StrictPointingHit().score(m, region=region, cell=6.0) == 0.0  # the strict variant ignores it
    assert PointingHit(tolerance=0).score(m, region=region, cell=6.0) == 0.0  # an explicit tolerance wins


def test_split_half_reliability_predicts_the_agreement_of_two_independent_maps():
    """Spearman-Brown from the two halves of one map's samples ~ the correlation of two full maps
    drawn with other seeds; and it grows with the number of samples."""
    from xaicli.explainers._common import split_half_reliability

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(1, 32, 32))

    def sampled(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        draws = truth + np.random.default_rng(seed).normal(scale=3.0, size=(n, 32, 32))
        return draws.mean(axis=0)[None], draws[0::2].mean(axis=0)[None], draws[1::2].mean(axis=0)[None]

    for n in (8, 64):
        full, even, odd = sampled(n, 1)
        other, _, _ = sampled(n, 2)
        reliability = split_half_reliability(even, odd)[0]
        agreement = np.corrcoef(full.ravel(), other.ravel())[0, 1]
        assert reliability == pytest.approx(agreement, abs=0.1), n
    assert split_half_reliability(*sampled(8, 1)[1:])[0] < split_half_reliability(*sampled(64, 1)[1:])[0]
    assert np.isnan(split_half_reliability(np.ones((1, 4, 4)), truth[:, :4, :4])[0])


# ------------------------------------------------------------- region metrics: the small print


def test_region_metrics_count_the_mass_of_their_normalization():
    m = np.zeros((4, 4))
    m[0, 0], m[3, 3] = -5.0, 1.0  # the largest magnitude is negative, inside the region
    assert BackgroundRatio(normalization="abs").score(m, region=REGION) == pytest.approx(1 / 6)
    assert PointingHit(normalization="abs").score(m, region=REGION) == 1.0
    assert PointingHit().score(m, region=REGION) == 0.0
    assert RoiRatio().column() == "RoiRatio" and RoiRatio().column("Lung") == "LungRatio"


def test_region_given_with_a_channel_or_at_another_size():
    m = np.zeros((3, 3))
    m[0, 0] = 1.0
    assert RoiRatio().score(m, region=np.pad(np.ones((1, 1, 1), bool), ((0, 2), (0, 2), (0, 0)))) == 1.0
    region = np.zeros((5, 5), bool)
    region[3:, 3:] = True  # at 3 x 3 by nearest neighbour (rows and columns 0, 1, 3 sampled): one pixel
    m = np.ones((3, 3))
    assert RoiRatio().score(m, region=region) == pytest.approx(1 / 9)


@pytest.mark.parametrize("metric", [RoiRatio(), BackgroundRatio(), PointingHit()])
def test_a_region_metric_without_a_region_names_itself_and_the_option(metric):
    with pytest.raises(UsageError, match=f"^metric '{metric.name}' needs a region of interest \\(roi\\)$") as caught:
        metric.score(np.ones((4, 4)))
    assert caught.value.parameter == "roi"


def test_entropy_of_one_and_two_pixel_maps():
    assert Entropy().score(np.ones((1, 1))) == 1.0  # a single pixel: no distribution to spread
    assert Entropy().score(np.array([[1.0, 0.0]])) == 0.0
    assert Entropy().score(np.array([[1.0, 1.0]])) == pytest.approx(1.0)


def test_pointing_hit_tolerance_is_a_disk_of_that_radius():
    region = np.zeros((15, 15), bool)
    region[7, 7] = True
    for tolerance, peak, hit in ((1, (7, 8), 1.0), (2, (7, 9), 1.0), (2, (7, 10), 0.0), (2, (7, 5), 1.0),
                                 (2, (9, 9), 0.0), (3, (7, 4), 1.0), (3, (7, 11), 0.0)):
        m = np.zeros((15, 15))
        m[peak] = 1.0
        assert PointingHit(tolerance=tolerance).score(m, region=region) == hit, (tolerance, peak)
    with pytest.raises(UsageError, match="^pointing-hit tolerance must be >= 0 pixels, not -1$"):
        PointingHit(tolerance=-1)
    with pytest.raises(UsageError, match="has no parameter 'radius'"):
        PointingHit(radius=3)
