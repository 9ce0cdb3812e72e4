"""BioNIC: a FER-2013 classifier whose hidden layers are wired by one cortical column of mouse V1.

    image [B,1,48,48]
      -> conv (8, stride 2) -> ReLU -> lateral inhibition -> conv (16) -> ReLU -> channel + spatial attention
      -> adaptive average pool to pool_size x pool_size -> dense projection
      -> group A (4P) -> group B (23P) -> group C (L5) -> group D (L6)      (masked by the column)
      -> linear read-out to 7 emotions (from L6, the last group; `readout_groups` may add L5)

Group sizes and masks come from a `Wiring` (bionic.connectome.build_wiring), never from constants.
Every biological feature is one constructor switch, so an ablation is one line of YAML.
"""

from __future__ import annotations

import inspect
from typing import Optional, Sequence

import torch
from torch import nn

from bionic.errors import BionicError
from bionic.nets.layers import (AdaptiveAvgPool, ChannelSpatialAttention, LaminarGroup, LateralInhibition,
                                MaskedLinear)
from bionic.nets.wiring_cache import cached_wiring

# The null models are masks under their own name: `mask: shuffled` is build_wiring(null_model="shuffled").
# They are bionic.connectome's NULL_MODELS (a test keeps the two equal), named here so that building
# a network from a cached wiring does not import the connectome tools.
NULL_MODELS = ("shuffled", "random")
MASKS = ("connectome", "dense", *NULL_MODELS)
# BioNIC's settings that make the wiring; BioNIC.from_wiring takes a ready wiring instead.
WIRING_SETTINGS = ("snapshot", "groups", "min_synapses", "inhibition_measure", "wiring_seed")


def load_wiring(snapshot: Optional[str] = None, groups: Optional[dict[str, list[str]]] = None,
                min_synapses: int = 1, inhibition_measure: str = "synapses",
                null_model: Optional[str] = None, seed: int = 0):
    """The column's wiring from bionic.connectome (bundled snapshot when `snapshot` is None), read
    from the wiring cache when it was built before from the same snapshot, code and arguments."""

    def build():
        from bionic.connectome import DEFAULT_GROUPS, build_wiring, load_column

        column = load_column(snapshot=snapshot)
        return build_wiring(column, groups=groups or DEFAULT_GROUPS, min_synapses=min_synapses,
                            inhibition_measure=inhibition_measure, null_model=null_model, seed=seed)

    return cached_wiring(snapshot, build, groups=groups or None, min_synapses=min_synapses,
                         inhibition_measure=inhibition_measure, null_model=null_model, seed=seed)


def dense_like(wiring):
    """Masks of the same shapes as `wiring` with every synapse present (no self-synapses within a group)."""
    between = [torch.ones_like(m) for m in wiring.between]
    within = [torch.ones_like(m) - torch.eye(m.shape[0], dtype=m.dtype) for m in wiring.within]
    return between, within


class ConvFrontEnd(nn.Module):
    """Retinotopic front end: conv -> ReLU -> lateral inhibition -> conv -> ReLU (-> conv -> ReLU ...)
    -> channel + spatial attention -> adaptive average pool.

    `rectify_first`: the lateral inhibition normalizes rectified responses, as in Heeger's
    normalization model of V1 (firing rates are not negative). False is the paper summary's
    literal order, conv -> lateral inhibition, where the divisive inhibition is the first conv's
    only nonlinearity and conv -> inhibition -> conv is close to linear; it cost 1.7 points of
    validation accuracy at 15 epochs (docs/tuning.md). Convs are 3x3 with padding 1; `strides`
    set the resolution. The default
    (2, 1) works at 24x24 from the first conv on, which keeps a training step near the baseline's
    with the same parameters; the measured step times are in results/bench.json.
    `batch_norm`: a BatchNorm after each conv, before its ReLU, as in the baseline's front end
    (conventional practice, not a biological feature; off by default, the paper names none).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], strides: Sequence[int],
                 lateral_inhibition: bool, pool_size: int, attention_reduction: int = 4,
                 rectify_first: bool = True, batch_norm: bool = False):
        super().__init__()
        channels, strides = [int(c) for c in channels], [int(s) for s in strides]
        if len(channels) < 1 or any(c < 1 for c in channels):
            raise BionicError(f"conv_channels must list at least one positive width, got {channels}")
        if len(strides) != len(channels) or any(s < 1 for s in strides):
            raise BionicError(f"conv_strides must give one positive stride per conv ({len(channels)} convs: "
                              f"{channels}), got {strides}")
        def conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            # No placeholder when off: the layer indices, and so committed checkpoints, stay as they were.
            layer = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
            return [layer, nn.BatchNorm2d(c_out)] if batch_norm else [layer]

        layers: list[nn.Module] = conv(in_channels, channels[0], strides[0])
        if rectify_first:
            layers.append(nn.ReLU())
        layers.append(LateralInhibition() if lateral_inhibition else nn.Identity())
        for c_in, c_out, stride in zip(channels[:-1], channels[1:], strides[1:]):
            layers += [*conv(c_in, c_out, stride), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.attention = ChannelSpatialAttention(channels[-1], reduction=attention_reduction)
        self.pool = AdaptiveAvgPool(pool_size)
        self.out_features = channels[-1] * pool_size * pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.attention(self.features(x))).flatten(1)


class BioNIC(nn.Module):
    """The BioNIC network (a plain nn.Module; bionic.modules.EmotionClassifier trains it).

    Feature switches (all on = the paper's model; each ablation flips one):
      conv               convolutional front end; off: the 48x48 pixels, flattened, feed the dense
                         projection into group A (no pooling)
      lateral_inhibition divisive normalization after the first conv
      mask               "connectome" (the column's synapses), "dense" (every synapse present, same
                         sizes), "shuffled" / "random" (the connectome's degree-preserving and
                         density-matched null models)
      intra_layer        one masked recurrent step within each group
      graded_inhibition  divisive inhibition scaled by each cell's inhibitory input in the column
      layer_norm         LayerNorm in each group
      synaptic_noise     std of Gaussian noise on each group's input current, training only (0 = off)
    Hebbian plasticity is a training-time feature: see EmotionClassifier(hebbian=...) and
    bionic.plasticity.

    Front end (not switches; ConvFrontEnd says why each is what it is): `conv_channels`,
    `conv_strides`, `rectify_first_conv` (ReLU before the lateral inhibition), `conv_batch_norm`
    (BatchNorm after each conv), `pool_size`, `attention_reduction`. Column (not a switch either):
    `layer_norm_bias` (LayerNorm's learned per-cell shift; off, a group's mean threshold is left to
    homeostasis's excitability), `inhibition_strength`. Read-out (not a switch): `readout_groups`,
    the groups whose rates the linear read-out reads side by side; None, the paper's, reads the
    last group (L6). ["C", "D"] reads both of the column's output layers, L5 and L6.

    Wiring: the column is loaded from `snapshot` (None = the bundled snapshot) and turned into
    masks by build_wiring with `groups`, `min_synapses`, `inhibition_measure` and `wiring_seed`
    (seed of the null models). BioNIC.from_wiring builds the network on a wiring made elsewhere.
    """

    def __init__(
        self,
        conv: bool = True,
        lateral_inhibition: bool = True,
        mask: str = "connectome",
        intra_layer: bool = True,
        graded_inhibition: bool = True,
        layer_norm: bool = True,
        layer_norm_bias: bool = True,
        synaptic_noise: float = 0.1,
        conv_channels: Sequence[int] = (8, 16),
        conv_strides: Sequence[int] = (2, 1),
        rectify_first_conv: bool = True,
        conv_batch_norm: bool = False,
        pool_size: int = 15,
        attention_reduction: int = 4,
        inhibition_strength: float = 1.0,
        readout_groups: Optional[Sequence[str]] = None,
        snapshot: Optional[str] = None,
        groups: Optional[dict[str, list[str]]] = None,
        min_synapses: int = 1,
        inhibition_measure: str = "synapses",
        wiring_seed: int = 0,
        num_classes: int = 7,
        in_channels: int = 1,
        image_size: int = 48,
    ):
        settings = {name: value for name, value in locals().items()
                    if name not in ("self", "__class__", *WIRING_SETTINGS)}
        super().__init__()
        _check_mask(mask)  # before the wiring is built: the mask chooses its null model
        wiring = load_wiring(snapshot, groups, min_synapses, inhibition_measure,
                             mask if mask in NULL_MODELS else None, wiring_seed)
        self._build(wiring, **settings)

    @classmethod
    def from_wiring(cls, wiring, **settings) -> "BioNIC":
        """A BioNIC on a prebuilt wiring (anything with the fields of bionic.connectome.Wiring).

        `settings` are __init__'s, with its defaults, except those that make the wiring
        (WIRING_SETTINGS). mask "shuffled" / "random" needs a wiring built with that null model.
        Not a config option: configs name the snapshot, so a run can be rebuilt from its config.
        """
        params = inspect.signature(cls.__init__).parameters
        defaults = {name: p.default for name, p in params.items() if name != "self" and name not in WIRING_SETTINGS}
        unknown = sorted(set(settings) - set(defaults))
        if unknown:
            raise BionicError(f"BioNIC.from_wiring: unknown setting(s) {', '.join(unknown)} (the wiring is given; "
                              f"known: {', '.join(defaults)})")
        settings = {**defaults, **settings}
        mask = settings["mask"]
        _check_mask(mask)
        made_by = dict(getattr(wiring, "wiring_source", {}) or {}).get("null_model")
        if mask in NULL_MODELS and made_by != mask:
            raise BionicError(f"mask={mask!r} needs a null-model wiring (build_wiring(..., null_model={mask!r})); "
                              f"this wiring's null model is {made_by!r}")
        net = cls.__new__(cls)
        nn.Module.__init__(net)
        net._build(wiring, **settings)
        return net

    def _build(self, wiring, *, conv, lateral_inhibition, mask, intra_layer, graded_inhibition, layer_norm,
               layer_norm_bias, synaptic_noise, conv_channels, conv_strides, rectify_first_conv, conv_batch_norm,
               pool_size, attention_reduction, inhibition_strength, readout_groups, num_classes, in_channels,
               image_size) -> None:
        if synaptic_noise < 0:
            raise BionicError(f"synaptic_noise must be >= 0 (0 = off), got {synaptic_noise}")
        between, within = (dense_like(wiring) if mask == "dense"
                           else (list(wiring.between), list(wiring.within)))
        sizes = [int(s) for s in wiring.sizes]
        _check_shapes(sizes, between, within, wiring.inhibition)

        self.group_names = list(wiring.group_names)
        self.sizes = sizes
        self.wiring_source = {**dict(wiring.wiring_source), "mask": mask}

        if conv:
            self.front = ConvFrontEnd(in_channels, conv_channels, conv_strides, lateral_inhibition, pool_size,
                                      attention_reduction, rectify_first=rectify_first_conv,
                                      batch_norm=conv_batch_norm)
            n_features = self.front.out_features
        else:
            self.front = nn.Flatten()
            n_features = in_channels * image_size * image_size

        groups_: list[LaminarGroup] = []
        for i, n in enumerate(sizes):
            # Into A: a dense projection (the front end's input to L4 has no connectome data).
            feedforward = nn.Linear(n_features, n) if i == 0 else MaskedLinear(between[i - 1])
            groups_.append(LaminarGroup(
                feedforward, within[i] if intra_layer else None, wiring.inhibition[i],
                layer_norm=layer_norm, layer_norm_bias=layer_norm_bias, graded_inhibition=graded_inhibition,
                inhibition_strength=inhibition_strength, synaptic_noise=synaptic_noise))
        self.groups = nn.ModuleList(groups_)
        read = list(readout_groups) if readout_groups else self.group_names[-1:]
        unknown = [g for g in read if g not in self.group_names]
        if unknown or len(set(read)) != len(read):
            raise BionicError(f"readout_groups must name distinct groups of the wiring ({', '.join(self.group_names)}), "
                              f"got {read}")
        self.readout_from = sorted(self.group_names.index(g) for g in read)  # in the data's order
        self.readout = nn.Linear(sum(sizes[i] for i in self.readout_from), num_classes)

    @property
    def n_synapses(self) -> int:
        """Unmasked synapses in the laminar part (between groups, plus within when intra_layer)."""
        return sum(layer.n_synapses for _, layer, _ in self.plastic_synapses())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.front(x)
        rates = []
        for group in self.groups:
            h = group(h)
            rates.append(h)
        return self.readout(self.readout_input(rates))

    def readout_input(self, rates: Sequence[torch.Tensor]) -> torch.Tensor:
        """What the read-out reads, from every group's rates in the data's order: the paper's last
        group as it is (no copy in the training step), or the `readout_groups` side by side."""
        read = [rates[i] for i in self.readout_from]
        return read[0] if len(read) == 1 else torch.cat(read, 1)

    # --- the structure plasticity acts on ----------------------------------------------------
    def laminar_groups(self) -> list[tuple[str, LaminarGroup]]:
        return list(zip(self.group_names, self.groups))

    def plastic_synapses(self) -> list[tuple[str, MaskedLinear, LaminarGroup]]:
        """(name, masked synapses, postsynaptic group) for every connectome-masked weight matrix."""
        out = []
        for i, (name, group) in enumerate(self.laminar_groups()):
            if isinstance(group.feedforward, MaskedLinear):
                out.append((f"{self.group_names[i - 1]}->{name}", group.feedforward, group))
            if group.recurrent is not None:
                out.append((f"{name}->{name}", group.recurrent, group))
        return out


def _check_mask(mask: str) -> None:
    if mask not in MASKS:
        raise BionicError(f"unknown mask {mask!r}; use one of {', '.join(MASKS)}")


def _check_shapes(sizes, between, within, inhibition) -> None:
    n = len(sizes)
    if n < 1 or len(between) != n - 1 or len(within) != n or len(inhibition) != n:
        raise BionicError(f"wiring is inconsistent: {n} groups but {len(between)} between-masks, "
                          f"{len(within)} within-masks, {len(inhibition)} inhibition vectors; rebuild it")
    for i, m in enumerate(between):
        if tuple(m.shape) != (sizes[i + 1], sizes[i]):
            raise BionicError(f"between-mask {i} has shape {tuple(m.shape)}, expected "
                              f"{(sizes[i + 1], sizes[i])} [post, pre]; rebuild the wiring")
    for i, m in enumerate(within):
        if tuple(m.shape) != (sizes[i], sizes[i]):
            raise BionicError(f"within-mask {i} has shape {tuple(m.shape)}, expected {(sizes[i], sizes[i])}")
