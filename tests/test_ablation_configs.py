"""configs/bionic.yaml turns every feature on; each ablations/*.yaml flips exactly one setting.

Configs are parsed by the project's own LightningCLI parser (bionic.cli.BionicCLI, run=False,
classes not instantiated), in the order the user gives them on the command line.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bionic.cli import BionicCLI
from bionic.data import FER2013DataModule
from bionic.modules import EmotionClassifier
from bionic.nets import BioNIC
from bionic.plasticity import HebbianPlasticity, Plasticity

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


class ParseOnly(BionicCLI):
    def instantiate_classes(self) -> None:  # parse and validate, build nothing
        pass


def parsed(*configs: str) -> dict:
    cli = ParseOnly(EmotionClassifier, FER2013DataModule, run=False,
                    args=[arg for c in configs for arg in ("--config", str(REPO / c))])
    cfg = cli.config.as_dict()
    cfg.pop("config", None)  # the list of --config paths themselves
    return cfg


def flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


@pytest.fixture(scope="module")
def base():
    return parsed("configs/bionic.yaml")


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


def test_bionic_yaml_shares_the_baseline_recipe(base):
    """A fair comparison: same data, trainer and optimizer settings as configs/baseline.yaml."""
    baseline = parsed("configs/baseline.yaml")
    assert base["data"] == baseline["data"]
    for key in ("optimizer", "lr", "weight_decay", "label_smoothing", "scheduler"):
        assert base["model"][key] == baseline["model"][key], key
    trainer = {k: v for k, v in base["trainer"].items() if k != "default_root_dir"}
    assert trainer == {k: v for k, v in baseline["trainer"].items() if k != "default_root_dir"}
    assert base["seed_everything"] == baseline["seed_everything"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ablation_flips_exactly_one_setting_and_trains(base, name):
    cfg = parsed("configs/bionic.yaml", f"ablations/{name}.yaml")
    before, after = flat(base), flat(cfg)
    assert before.keys() == after.keys()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    key, value = EXPECTED[name]
    assert list(changed) == [key], changed
    assert after[key] == value and before[key] != value

    model = build(cfg)
    x, y = torch.randn(2, 1, 48, 48), torch.tensor([0, 3])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    hebbian = any(isinstance(cb, HebbianPlasticity) for cb in model.configure_callbacks())
    assert hebbian == (name != "no_hebbian")


def build(cfg: dict) -> EmotionClassifier:
    """The model the CLI would build from a parsed config (net from its class_path's init_args)."""
    m = dict(cfg["model"])
    net = m.pop("net")
    assert net["class_path"] == "bionic.nets.BioNIC"
    m["plasticity"] = Plasticity(**m["plasticity"])
    return EmotionClassifier(BioNIC(**net["init_args"]), **m)


def test_null_model_controls_keep_sizes_and_synapse_counts(base):
    nets = {}
    for name in ("control_shuffled", "control_random", "no_mask"):
        nets[name] = build(parsed("configs/bionic.yaml", f"ablations/{name}.yaml")).net
    nets["connectome"] = build(base).net
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
