"""The benched variants, each built by the project's own LightningCLI from configs/ as `fit` builds it."""

from __future__ import annotations

import sys
from pathlib import Path

# variant -> (configs relative to the repository root, extra LightningCLI overrides); the
# plasticity-free BioNIC is the matrix's no_hebbian ablation, under the key bench.json has always used.
VARIANTS = {
    "baseline": (["configs/baseline.yaml"], []),
    "bionic": (["configs/bionic.yaml"], []),
    "bionic_no_plasticity": (["configs/bionic.yaml", "ablations/no_hebbian.yaml"], []),
    "bionic_wide": (["configs/bionic_wide.yaml"], []),
}
# What `make bench` times and its targets compare. The wide front end (48x48 maps, several times
# BioNIC's step) is timed on request, `--variants ... bionic_wide`, so bench.json stays comparable.
DEFAULT_VARIANTS = ("baseline", "bionic", "bionic_no_plasticity")


def config_args(root: Path, variant: str) -> list[str]:
    """The variant's `--config` files (in order: later ones win) and its overrides."""
    configs, overrides = VARIANTS[variant]
    return [a for c in configs for a in ("--config", str(root / c))] + overrides


def build(root: Path, variant: str, data_root: str, batch_size: int | None, run_dir: Path, steps: int,
          extra: list[str]):
    """The variant's LightningCLI (run=False): its model, datamodule and trainer, as `fit` would build them,
    shrunk to `steps` training steps that write nothing; `batch_size` None keeps the recipe's."""
    from lightning.pytorch.callbacks import Checkpoint, EarlyStopping

    from bionic.cli import BionicCLI
    from bionic.data import FER2013DataModule
    from bionic.modules import EmotionClassifier

    args = config_args(root, variant) + [
        "--data.root", str(data_root), *(["--data.batch_size", str(batch_size)] if batch_size else []),
        "--data.progress", "false",
        "--trainer.default_root_dir", str(run_dir), f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.logger", "false", "--wandb.mode", "disabled",
        *extra,
    ]
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees both args and sys.argv
    try:
        cli = BionicCLI(EmotionClassifier, FER2013DataModule, run=False, args=args, save_config_callback=None)
    finally:
        sys.argv = argv
    # No checkpoints (nothing to keep), and no EarlyStopping: it watches val/acc, which a run
    # without validation never has. Every other callback of a real fit stays, and is timed.
    cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, (EarlyStopping, Checkpoint))]
    return cli
