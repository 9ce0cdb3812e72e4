"""configs/bionic.yaml turns every feature on; each ablations/*.yaml flips exactly one setting
(and names its own run directory and W&B group, so a hand-run ablation never shares the full model's).

Every config goes through the project's own LightningCLI (bionic.cli.BionicCLI with run=False): parsed
with the recipe and the --config files in the order a user gives them, and its model, data and
trainer instantiated as `fit` would, nothing built by hand.
"""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from bionic.cli import BionicCLI
from bionic.data import FER2013DataModule
from bionic.modules import EmotionClassifier
from bionic.plasticity import HebbianPlasticity
from bionic.runs import is_resumable

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
NET = "model.net.init_args."
# file stem -> (the one setting it changes, its value)
EXPECTED = {
    "no_conv": (NET + "conv", False),
    "no_lateral_inhibition": (NET + "lateral_inhibition", False),
    "no_mask": (NET + "mask", "dense"),
    "no_intra_layer": (NET + "intra_layer", False),
    "no_graded_inhibition": (NET + "graded_inhibition", False),
    "no_layer_norm": (NET + "layer_norm", False),
    "no_synaptic_noise": (NET + "synaptic_noise", 0.0),
    "no_hebbian": ("model.hebbian", False),
    "no_augmentation": ("data.augment", False),
    "no_label_smoothing": ("model.label_smoothing", 0.0),
    "no_lr_scheduler": ("model.scheduler", None),
    "no_weight_decay": ("model.weight_decay", 0.0),
    "control_shuffled": (NET + "mask", "shuffled"),
    "control_random": (NET + "mask", "random"),
}


def built(*configs: str) -> BionicCLI:
    """The CLI as `fit --config ...` sets it up: config parsed, model, datamodule and trainer built."""
    args = [arg for c in configs for arg in ("--config", str(REPO / c))] + ["--wandb.mode", "disabled"]
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees both args and sys.argv
    try:
        return BionicCLI(EmotionClassifier, FER2013DataModule, run=False, args=args)
    finally:
        sys.argv = argv


def parsed(cli: BionicCLI) -> dict:
    cfg = cli.config.as_dict()
    cfg.pop("config", None)  # the list of --config paths themselves
    return cfg


def flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


@pytest.fixture(scope="module")
def base_cli():
    return built("configs/bionic.yaml")


@pytest.fixture(scope="module")
def base(base_cli):
    return parsed(base_cli)


def test_every_ablation_file_is_known():
    assert {p.stem for p in (REPO / "ablations").glob("*.yaml")} == set(EXPECTED)


def test_bionic_yaml_turns_every_feature_on(base):
    net = base["model"]["net"]
    assert net["class_path"] == "bionic.nets.BioNIC"
    args = net["init_args"]
    assert args["conv"] and args["lateral_inhibition"] and args["intra_layer"]
    assert args["graded_inhibition"] and args["layer_norm"] and args["synaptic_noise"] > 0
    assert args["mask"] == "connectome"
    model = base["model"]
    assert model["hebbian"] and model["label_smoothing"] > 0 and model["weight_decay"] > 0
    assert model["scheduler"] is not None and base["data"]["augment"]


def test_both_networks_train_by_one_recipe(base):
    """A fair comparison: everything but the network, hebbian and the run's names is the recipe's."""
    baseline = parsed(built("configs/baseline.yaml"))
    before, after = flat(base), flat(baseline)
    differ = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert {k for k in differ if not k.startswith("model.net.")} == {"model.hebbian", "trainer.default_root_dir",
                                                                        "wandb.group"}
    # the network files hold only that difference; the rest is stated once (recipe and signatures).
    # A recipe of its own (configs/bionic_*.yaml) may set its network's settings too, and what
    # changes how long or how fast it runs but not the run (its budget, its validation batch:
    # bionic.runs.RESUMABLE).
    for path in (REPO / "configs").glob("*.yaml"):
        own = path.stem.startswith("bionic_")
        keys = {k for k in flat(yaml.safe_load(path.read_text()))
                if not (own and (k.startswith("model.net.init_args.") or is_resumable(k)))}
        assert keys <= {"model.net.class_path", "model.hebbian", "trainer.default_root_dir", "wandb.group"}, path


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_early_stopping_never_cuts_the_schedule(config):
    """The one-cycle schedule ends a run: early stopping that fires first ends it before the
    low-rate tail where runs make their best epochs (docs/tuning.md, round 16)."""
    from lightning.pytorch.callbacks import EarlyStopping

    trainer = built(f"configs/{config}").trainer
    stoppers = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert stoppers and all(c.patience >= trainer.max_epochs for c in stoppers), [c.patience for c in stoppers]


def test_the_wide_recipe_changes_only_the_front_end(base):
    """bionic_wide: the laminar column, its plasticity, the recipe and its 100 epochs exactly as
    BioNIC's; only the convolutions before the column are its own, besides what changes speed and
    not the run (its validation batch: bionic.runs.RESUMABLE)."""
    wide = flat(parsed(built("configs/bionic_wide.yaml")))
    before = flat(base)
    differ = {k for k in before.keys() | wide.keys() if before.get(k) != wide.get(k)} - set(OWN_NAMES)
    assert {k for k in differ if not is_resumable(k)} == {
        f"model.net.init_args.{k}" for k in ("conv_channels", "conv_strides", "pool_size")}
    assert wide["trainer.max_epochs"] == 100


def test_the_l5l6_read_out_recipe_changes_only_the_read_out(base):
    """bionic_l5l6_readout: BioNIC exactly, recipe and budget too, read out from L5 and L6 side by side."""
    cli = built("configs/bionic_l5l6_readout.yaml")
    both, before = flat(parsed(cli)), flat(base)
    differ = {k for k in before.keys() | both.keys() if before.get(k) != both.get(k)} - set(OWN_NAMES)
    assert differ == {"model.net.init_args.readout_groups"} and both[differ.pop()] == ["C", "D"]
    assert cli.model.net.readout.in_features == sum(cli.model.net.sizes[2:])


# Keys an ablation file sets besides its one setting: where its hand-run lives and its W&B group.
OWN_NAMES = ("trainer.default_root_dir", "wandb.group")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ablation_flips_exactly_one_setting_and_trains(base, name):
    cli = built("configs/bionic.yaml", f"ablations/{name}.yaml")
    before, after = flat(base), flat(parsed(cli))
    assert before.keys() == after.keys()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k] and k not in OWN_NAMES}
    key, value = EXPECTED[name]
    assert list(changed) == [key], changed
    assert after[key] == value and before[key] != value
    assert after["trainer.default_root_dir"] == f"runs/{name}" and after["wandb.group"] == name
    assert cli.trainer.default_root_dir.endswith(f"runs/{name}")

    model = cli.model
    x, y = torch.randn(2, 1, 48, 48), torch.tensor([0, 3])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    # what the trainer attaches when fit starts
    hebbian = any(isinstance(cb, HebbianPlasticity) for cb in model.configure_callbacks())
    assert hebbian == (name != "no_hebbian")
    if name == "no_augmentation":
        assert cli.datamodule.hparams.augment is False


def test_null_model_controls_keep_sizes_and_synapse_counts(base_cli):
    nets = {name: built("configs/bionic.yaml", f"ablations/{name}.yaml").model.net
            for name in ("control_shuffled", "control_random", "no_mask")}
    nets["connectome"] = base_cli.model.net
    sizes = {name: net.sizes for name, net in nets.items()}
    assert len({tuple(s) for s in sizes.values()}) == 1, sizes
    connectome = nets["connectome"]
    assert nets["control_shuffled"].n_synapses == connectome.n_synapses
    assert nets["control_random"].n_synapses == connectome.n_synapses
    assert nets["no_mask"].n_synapses > connectome.n_synapses
    masks = lambda net: [layer.mask for _, layer, _ in net.plastic_synapses()]  # noqa: E731
    for name in ("control_shuffled", "control_random"):
        assert any(not torch.equal(a, b) for a, b in zip(masks(nets[name]), masks(connectome))), name
        assert nets[name].wiring_source["null_model"] is not None
