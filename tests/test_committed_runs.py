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
    assert len(CONFIGS) >= 6, "results/headline/runs holds baseline and bionic, three seeds each"
