"""The wiring cache: a network built again reads the wiring it built before, never a stale one."""

import shutil

import pytest
import torch

import bionic.connectome as connectome
from bionic.connectome import NULL_MODELS
from bionic.nets import BioNIC
from bionic.nets import bionic as bionic_net
from bionic.column_folder import BUNDLED_DIR
from bionic.nets.wiring_cache import cache_dir, wiring_key

SMALL = dict(conv_channels=(4, 6), pool_size=4)


def masks(net):
    return [layer.mask for _, layer, _ in net.plastic_synapses()] + [g.inhibition for g in net.groups]


def count_builds(monkeypatch):
    calls = []
    original = connectome.build_wiring

    def counting(*args, **kwargs):
        calls.append(kwargs.get("null_model"))
        return original(*args, **kwargs)

    monkeypatch.setattr(connectome, "build_wiring", counting)
    return calls


def test_second_network_reads_the_cached_wiring(monkeypatch):
    calls = count_builds(monkeypatch)
    first = BioNIC(**SMALL)
    assert calls == [None] and len(list(cache_dir().glob("wiring-*.pt"))) == 1
    second = BioNIC(**SMALL)
    assert calls == [None], "built once, read back the second time"
    assert second.sizes == first.sizes and second.group_names == first.group_names
    assert second.wiring_source == first.wiring_source
    for a, b in zip(masks(first), masks(second)):
        assert torch.equal(a, b)


def test_every_build_argument_is_part_of_the_key(monkeypatch):
    calls = count_builds(monkeypatch)
    BioNIC(**SMALL, mask="shuffled", wiring_seed=0)
    BioNIC(**SMALL, mask="shuffled", wiring_seed=1)
    BioNIC(**SMALL, mask="random", wiring_seed=0)
    BioNIC(**SMALL, min_synapses=2)
    assert calls == ["shuffled", "shuffled", "random", None]
    a = BioNIC(**SMALL, mask="shuffled", wiring_seed=0)
    b = BioNIC(**SMALL, mask="shuffled", wiring_seed=1)
    assert len(calls) == 4 and any(not torch.equal(x, y) for x, y in zip(masks(a), masks(b)))


def test_a_changed_snapshot_is_another_key(tmp_path):
    copy = tmp_path / "snapshot"
    shutil.copytree(BUNDLED_DIR, copy)
    args = dict(groups=None, min_synapses=1, inhibition_measure="synapses", null_model=None, seed=0)
    assert wiring_key(str(copy), **args) == wiring_key(None, **args)  # same bytes, same wiring
    cells = copy / "cells.csv"
    cells.write_text(cells.read_text() + "\n")
    assert wiring_key(str(copy), **args) != wiring_key(None, **args)
    assert wiring_key(str(tmp_path / "missing"), **args) is None  # the build reports it


def test_a_broken_cache_file_is_rebuilt(monkeypatch):
    calls = count_builds(monkeypatch)
    BioNIC(**SMALL)
    (path,) = cache_dir().glob("wiring-*.pt")
    path.write_bytes(b"not a torch file")
    net = BioNIC(**SMALL)
    assert calls == [None, None] and net.n_synapses > 0


def test_bad_snapshot_is_still_one_clear_error(tmp_path):
    from bionic.errors import BionicError

    with pytest.raises(BionicError, match="does not exist"):
        BioNIC(**SMALL, snapshot=str(tmp_path / "missing"))


def test_the_null_models_are_the_connectomes():
    assert bionic_net.NULL_MODELS == NULL_MODELS
