"""A W&B run file's config and history as logged (JSON text per key), for tests that check what
reached the run; bionic.wandb_log reads the file."""

from __future__ import annotations

from pathlib import Path

from bionic.wandb_log import records


def config_and_history(path: Path) -> tuple[dict, list[dict]]:
    """The run's config (key -> JSON text) and its history rows (key -> JSON text), as logged."""
    config, history = {}, []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: item.value_json for item in record.config.update})
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return config, history


def log_offline(root: Path, rows: list[dict], run_id: str = "wandblogtest") -> None:
    """A real offline W&B run under `root` (root/wandb/offline-run-*) that logs `rows`; the same
    run_id again resumes it, as a resumed training does."""
    import wandb

    run = wandb.init(mode="offline", dir=root, project="bionic-test", id=run_id, resume="allow")
    for row in rows:
        run.log(row)
    run.finish()
    # finish() returns before wandb-core has written its last buffered 32 KiB block (the log then
    # ends inside a record in about one call in four); teardown waits for the service to exit.
    wandb.teardown()
