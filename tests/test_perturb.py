"""Perturbations: closed-form identities, the Gaussian kernel, seeding and the CLI spellings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from mgap.core.errors import UsageError
from mgap.engine.extract.perturb import (
    SUITES,
    Perturbation,
    image_sides,
    parse_perturbation,
    perturb_array,
    perturbation_names,
)


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


def test_blur_1_occlude_0_noise_0_are_the_identity(photo):
    for text in ("blur:1", "occlude:0", "noise:0"):
        out = perturb_array(photo, parse_perturbation(text), seed=5, index=2)
        assert out.dtype == np.uint8 and np.array_equal(out, photo), text


def test_same_seed_reproduces_and_another_seed_differs(photo):
    for text in ("noise:0.05", "occlude:16"):
        setting = parse_perturbation(text)
        a = perturb_array(photo, setting, seed=7, index=4)
        b = perturb_array(photo, setting, seed=7, index=4)
        c = perturb_array(photo, setting, seed=8, index=4)
        d = perturb_array(photo, setting, seed=7, index=5)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_blur_of_a_point_is_the_outer_product_of_the_gaussian():
    k = 5
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV / torchvision default for kernel k
    taps = [math.exp(-((t - 2) ** 2) / (2 * sigma**2)) for t in range(k)]
    taps = [t / sum(taps) for t in taps]
    image = np.zeros((21, 21, 3), dtype=np.uint8)
    image[10, 10] = 200
    out = perturb_array(image, Perturbation("blur", k), seed=0, index=0).astype(float)
    expected = np.zeros((21, 21))
    for i in range(k):
        for j in range(k):
            expected[8 + i, 8 + j] = round(200 * taps[i] * taps[j])
    assert np.allclose(out[..., 0], expected, atol=1)
    assert np.array_equal(out[..., 0], out[..., 2])
    flat = np.full((9, 9, 3), 77, dtype=np.uint8)
    assert np.array_equal(perturb_array(flat, Perturbation("blur", 3), 0, 0), flat)


def test_occlusion_paints_one_square_of_that_size_inside_the_image():
    white = np.full((40, 50, 3), 255, dtype=np.uint8)
    out = perturb_array(white, Perturbation("occlude", 12), seed=1, index=9)
    black = np.all(out == 0, axis=2)
    rows, cols = np.flatnonzero(black.any(1)), np.flatnonzero(black.any(0))
    assert black.sum() == 144 and rows.size == cols.size == 12
    assert rows[-1] - rows[0] == 11 and cols[-1] - cols[0] == 11
    # a patch bigger than the image covers it
    big = perturb_array(white, Perturbation("occlude", 64), seed=1, index=9)
    assert not big.any()


def test_noise_is_on_the_unit_scale_and_clipped():
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)
    out = perturb_array(grey, Perturbation("noise", 0.05), seed=0, index=0) / 255.0
    assert abs(out.mean() - 128 / 255) < 2e-3
    assert abs(out.std() - 0.05) < 2e-3
    white = np.full((50, 50, 3), 255, dtype=np.uint8)
    noisy = perturb_array(white, Perturbation("noise", 0.1), seed=0, index=0)
    assert noisy.max() == 255 and (noisy < 255).mean() == pytest.approx(0.5, abs=0.05)


def test_names_suites_and_bad_spellings():
    assert perturbation_names(["noise:.05", "blur:3", "noise:0.050"]) == ["noise:0.05", "blur:3"]
    suite = perturbation_names([], ["rtml"])
    assert suite == list(SUITES["rtml"]) and len(suite) == 8
    for bad in ("fog:1", "noise", "blur:2", "occlude:-1", "noise:abc", "blur:x"):
        with pytest.raises(UsageError):
            parse_perturbation(bad)
    with pytest.raises(UsageError):
        perturbation_names([], ["nope"])


def test_image_sides_keep_the_clean_image_first():
    image = Image.fromarray(np.full((20, 20, 3), 100, dtype=np.uint8))
    sides = image_sides(image, [Perturbation("occlude", 4)], seed=0, index=0)
    assert sides[0] is image and len(sides) == 2
    assert np.asarray(sides[1]).min() == 0 and np.asarray(sides[0]).min() == 100
