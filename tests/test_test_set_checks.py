"""scripts/test_set_checks.py: twins across splits, a run's network reloaded, the three intervals."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import yaml

from bionic.nets import BaselineCNN
from helpers.scripts import load_script


@pytest.fixture(scope="module")
def checks():
    return load_script("test_set_checks")


def test_twins_are_pixel_identical_images_only(checks):
    rng = np.random.default_rng(0)
    train = torch.from_numpy(rng.integers(0, 256, (5, 48, 48), dtype=np.uint8))
    near = train[1].clone()
    near[0, 0] ^= 1  # one grey level apart in one pixel: not a twin
    images = torch.stack([train[3].clone(), near, train[0].clone()])
    assert checks.twins_in(images, train).tolist() == [True, False, True]


def test_a_run_reloads_with_its_weights_and_normalization(checks, tmp_path):
    torch.manual_seed(0)
    net = BaselineCNN().eval()
    config = {"model": {"net": {"class_path": "bionic.nets.BaselineCNN", "init_args": {"dropout": 0.3}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "FER2013DataModule": {"mean": 0.5, "std": 0.25}}, tmp_path / "best.ckpt")
    loaded, norm = checks.load_net(tmp_path)
    assert norm == {"mean": 0.5, "std": 0.25} and not loaded.training
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(loaded(x), net(x))

    images = torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        want = net((images.unsqueeze(1).float() / 255 - 0.5) / 0.25).argmax(1)
    labels = want.clone()
    labels[:2] = (labels[:2] + 1) % 7  # two wrong
    assert checks.correct(loaded, norm, images, labels).tolist() == [False, False, True, True, True, True]


def test_intervals_cover_the_difference_and_widen_with_image_noise(checks):
    rng = np.random.default_rng(1)
    # 3 seeds x 4000 images: the second model is right on 2 % more images, with image-level noise.
    base = rng.random((3, 4000)) < 0.6
    other = base | (rng.random((3, 4000)) < 0.05)
    delta = other.astype(float) - base.astype(float)
    ci = checks.intervals(delta, 500, np.random.default_rng(0))
    assert set(ci) == {"seeds", "images", "seeds and images"}
    mean = 100 * delta.mean()
    for lo, hi in ci.values():
        assert lo < mean < hi
    assert ci["images"][1] - ci["images"][0] > 0.2  # 4,000 images leave real sampling error
    # No difference at all: every interval is the point 0.
    zero = checks.intervals(np.zeros((3, 100)), 50, np.random.default_rng(0))
    assert all(lo == hi == 0 for lo, hi in zero.values())


def test_selection_optimism_is_the_best_epoch_above_its_neighbours(checks):
    history = [{"val/acc": a} for a in (0.50, 0.52, 0.60, 0.54, 0.56)] + [{"train/acc": 0.7}]
    # best 0.60 at index 2; its neighbours within 1 epoch: 0.52, 0.60, 0.54 -> mean 0.5533
    assert checks.selection_optimism(history, half=1) == pytest.approx(100 * (0.60 - (0.52 + 0.60 + 0.54) / 3))
    assert checks.selection_optimism([{"val/acc": 0.5}] * 4) == 0


def test_nearest_similarity_sees_copies_through_brightness_contrast_and_mirror(checks):
    rng = np.random.default_rng(2)
    train = torch.from_numpy(rng.integers(0, 256, (50, 48, 48), dtype=np.uint8))
    brighter = (train[4].float() * 0.5 + 60).to(torch.uint8)  # another contrast and brightness
    images = torch.stack([train[7].clone(), train[3].flip(-1), brighter,
                          torch.from_numpy(rng.integers(0, 256, (48, 48), dtype=np.uint8))])
    sim = checks.nearest_similarity(images, train, chunk=16)  # chunks smaller than the reference
    assert sim[:3] == pytest.approx(1.0, abs=1e-2)
    assert sim[3] < 0.2  # independent noise: nothing near it
