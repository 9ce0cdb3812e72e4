"""A small random wiring with the fields of bionic.connectome.Wiring, for tests that must not depend
on the column data: BioNIC.from_wiring(synthetic_wiring(...), **settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SyntheticWiring:
    group_names: list[str]
    group_types: dict[str, list[str]]
    sizes: list[int]
    between: list[torch.Tensor]
    within: list[torch.Tensor]
    inhibition: list[torch.Tensor]
    wiring_source: dict = field(default_factory=dict)


def synthetic_wiring(sizes=(12, 10, 8, 9), density: float = 0.3, seed: int = 0) -> SyntheticWiring:
    """Random 0/1 masks (mask[post, pre]) with the given group sizes; diagonal of `within` zero."""
    g = torch.Generator().manual_seed(seed)
    sizes = [int(s) for s in sizes]
    names = [chr(ord("A") + i) for i in range(len(sizes))]
    between = [(torch.rand(post, pre, generator=g) < density).float() for pre, post in zip(sizes[:-1], sizes[1:])]
    within = []
    for n in sizes:
        m = (torch.rand(n, n, generator=g) < density).float()
        m.fill_diagonal_(0.0)
        within.append(m)
    inhibition = [torch.rand(n, generator=g) for n in sizes]
    return SyntheticWiring(names, {k: [k] for k in names}, sizes, between, within, inhibition,
                           {"synthetic": True, "density": density, "seed": seed})
