"""The data figures: FER-2013 loading (first and cached) and the train loader's batches per second."""

from __future__ import annotations

import time
from types import SimpleNamespace

from bionic.bench.timers import median_s, sync
from bionic.errors import BionicError


def time_loading(dm) -> dict:
    """FER-2013 load through read_fer2013: the first call decodes when nothing is cached."""
    from bionic.data import read_fer2013

    hp = dm.hparams

    def load():
        return read_fer2013(hp.root, hp.cache_dir, hp.val_fraction, hp.split_seed, progress=False)

    t = time.perf_counter()
    splits = load()
    first = time.perf_counter() - t
    return {"first_load_s": first, "cached_load_s": median_s(load, 3, warmup=0),
            "images": {role: len(splits.labels[role]) for role in ("train", "val", "test")}}


def time_pipeline(dm, device, n_batches: int) -> dict:
    """Batches/s of the DataModule's train loader, moved to the device and augmented there
    (on_after_batch_transfer), as the Trainer does before each step."""
    dm.setup("fit")
    trainer = dm.trainer
    dm.trainer = SimpleNamespace(training=True)  # what on_after_batch_transfer asks before augmenting
    try:
        warm, samples, done = 2, 0, 0
        if len(dm.train_dataloader()) == 0:
            raise BionicError(f"the training split under {dm.hparams.root} is empty; check --data.root")
        while done < n_batches + warm:
            for images, labels in dm.train_dataloader():
                if done == warm:
                    sync(device)
                    start = time.perf_counter()
                batch = (images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
                dm.on_after_batch_transfer(batch, 0)
                if done >= warm:
                    samples += len(labels)
                done += 1
                if done >= n_batches + warm:
                    break
        sync(device)
        elapsed = time.perf_counter() - start
    finally:
        dm.trainer = trainer
    return {"batches": n_batches, "batch_size": dm.hparams.batch_size, "augment": bool(dm.hparams.augment),
            "batches_per_s": n_batches / elapsed, "samples_per_s": samples / elapsed}
