"""Every committed run's config.yaml still parses through the CLI, so its checkpoint can be rescored."""

from __future__ import annotations

import pytest

from conftest import REPO

CONFIGS = sorted((REPO / "results").glob("**/runs/**/config.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(REPO / "results")) for c in CONFIGS])
def test_a_committed_run_config_parses(config, capsys):
    from bionic.cli import run_cli

    with pytest.raises(SystemExit) as stop:
        run_cli(["test", "--config", str(config), "--print_config"])
    out = capsys.readouterr()
    assert stop.value.code in (0, None), out.err[-2000:]
    assert "class_path: bionic.nets." in out.out, "the printed config names the run's network"


def test_there_are_committed_runs():
    assert len(CONFIGS) >= 6, "results/headline_e30/runs holds baseline and bionic, three seeds each"


BIONIC_CONFIGS = [c for c in CONFIGS if "class_path: bionic.nets.BioNIC" in c.read_text()]


@pytest.mark.parametrize("config", BIONIC_CONFIGS, ids=[str(c.relative_to(REPO / "results")) for c in BIONIC_CONFIGS])
def test_a_committed_bionic_config_names_every_setting(config):
    """A setting missing from a run's config would be rebuilt with today's default, which may not
    be what the run trained with: when a default changes, the committed configs get the old value."""
    import inspect

    import yaml

    from bionic.nets import BioNIC

    init_args = yaml.safe_load(config.read_text())["model"]["net"]["init_args"]
    settings = [name for name in inspect.signature(BioNIC.__init__).parameters if name != "self"]
    assert not [name for name in settings if name not in init_args], f"{config} lacks BioNIC settings"


CHECKPOINTS = sorted((REPO / "results").glob("**/runs/**/best.ckpt"))


@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=[str(c.relative_to(REPO / "results")) for c in CHECKPOINTS])
def test_a_committed_checkpoint_is_weights_only(ckpt):
    """What `python -m bionic keep` writes: the weights, not what only resuming needs."""
    import torch

    kept = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert "state_dict" in kept
    assert not {"optimizer_states", "lr_schedulers", "current_model_state", "averaging_state"} & set(kept), ckpt
