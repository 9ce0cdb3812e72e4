"""`--model.test_flip true`: test-time flip averaging, scored apart from the plain test figures."""

from __future__ import annotations

import json

import torch

from bionic.cli import run_cli
from bionic.data import FER2013DataModule
from bionic.modules import EmotionClassifier
from bionic.nets import BaselineCNN
from conftest import tiny_fit_args


def test_flip_averaging_is_its_own_block_and_leaves_the_plain_figures_alone(fer_root, tmp_path):
    run_dir = tmp_path / "run"
    run_cli(["fit", "--config", "configs/baseline.yaml", *tiny_fit_args(fer_root, run_dir), "--seed_everything", "0"])
    run_cli(["test", "--config", str(run_dir / "config.yaml")])
    plain = json.loads((run_dir / "metrics.json").read_text())
    assert plain["flip"] is None
    run_cli(["test", "--config", str(run_dir / "config.yaml"), "--model.test_flip", "true"])
    both = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/acc", "test/f1_macro", "test/auroc", "confusion_matrix"):
        assert both[key] == plain[key], f"{key}: the plain figures do not change with test_flip"

    # The flip figures, worked out here from the checkpoint: mean of the two softmaxes, argmax.
    model = EmotionClassifier(BaselineCNN())
    model.load_state_dict(torch.load(both["ckpt_path"], map_location="cpu", weights_only=False)["state_dict"])
    model.eval()
    dm = FER2013DataModule(root=str(fer_root), progress=False)
    dm.setup("test")
    x, y = next(iter(dm.test_dataloader()))
    x = dm.on_after_batch_transfer((x, y), 0)[0]
    with torch.no_grad():
        probs = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
    expected = (probs.argmax(-1) == y).float().mean().item()
    assert abs(both["flip"]["test/acc"] - expected) < 1e-6
    assert sum(map(sum, both["flip"]["confusion_matrix"])) == len(y) == 28

    # With an explicit --ckpt_path, LightningCLI lays the checkpoint's saved test_flip (False) over
    # the command line; the flag must still win.
    run_cli(["test", "--config", str(run_dir / "config.yaml"), "--ckpt_path", both["ckpt_path"],
             "--model.test_flip", "true"])
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["flip"] == both["flip"]
