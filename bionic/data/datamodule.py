"""The FER-2013 LightningDataModule: cached uint8 tensors in, normalized (augmented) batches out."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from bionic.data.augment import Augmentation
from bionic.data.fer2013 import IMAGE_SUFFIXES, FERSplits, load_image, read_fer2013
from bionic.errors import BionicError

# FER-2013 Training-set statistics, used until a fit recomputes them from its own train split
# (and restored from the checkpoint for test/predict).
FER_MEAN, FER_STD = 0.5077, 0.2550


class TensorBatches(Dataset):
    """Images and labels already in memory; `__getitems__` hands out whole batches at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices)
        return self.images[idx], self.labels[idx]


def _as_batch(batch):
    return batch


class FER2013DataModule(L.LightningDataModule):
    """FER-2013 in either layout (image folders or the original CSV).

    Args:
        root: folder with ``train/`` and ``test/`` class folders, or with ``fer2013.csv`` /
            ``icml_face_data.csv`` (or the CSV file itself).
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict.
        val_fraction: fraction of Training carved (stratified) for validation when the data has no
            separate validation split.
        split_seed: seed of that carve; fixed across training seeds so all runs share one split.
        augment: one switch for all augmentation (the ``no_augmentation`` ablation turns it off).
        augmentation: the augmentation recipe (crop padding, flip, rotation, scale, erasing).
        cache_dir: where decoded tensors are cached (default ``$BIONIC_CACHE`` or ``~/.cache/bionic``).
        predict_path: image file or folder for ``predict``; any size or colour.
        num_workers: DataLoader workers; 0 is right here because batches are slices of a tensor.
    """

    def __init__(
        self,
        root: str = "data/fer2013",
        batch_size: int = 64,
        eval_batch_size: int = 512,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        augment: bool = True,
        augmentation: Augmentation = Augmentation(),
        cache_dir: str | None = None,
        predict_path: str | None = None,
        num_workers: int = 0,
        progress: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.augmentation = augmentation
        self.splits: FERSplits | None = None
        self.mean, self.std = FER_MEAN, FER_STD
        self.predict_files: list[str] = []

    # -- loading ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "predict":
            self._setup_predict()
            return
        if self.splits is None:
            hp = self.hparams
            self.splits = read_fer2013(hp.root, hp.cache_dir, hp.val_fraction, hp.split_seed, hp.progress)
        if stage == "fit":
            train = self.splits.images["train"].float() / 255
            self.mean, self.std = train.mean().item(), train.std().item()

    def _setup_predict(self) -> None:
        path = Path(self.hparams.predict_path or "")
        if not self.hparams.predict_path or not path.exists():
            raise BionicError(f"predict needs --data.predict_path pointing at an image or a folder (got '{path}')")
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        if not files:
            raise BionicError(f"no images under {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self.predict_files = [str(f) for f in files]
        self.predict_images = torch.stack([torch.from_numpy(load_image(f)) for f in files])

    def _loader(self, role: str, shuffle: bool) -> DataLoader:
        ds = TensorBatches(self.splits.images[role], self.splits.labels[role])
        bs = self.hparams.batch_size if role == "train" else self.hparams.eval_batch_size
        return DataLoader(ds, batch_size=bs, shuffle=shuffle, collate_fn=_as_batch,
                          num_workers=self.hparams.num_workers, drop_last=False)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        ds = TensorBatches(self.predict_images, torch.arange(len(self.predict_images)))
        return DataLoader(ds, batch_size=self.hparams.eval_batch_size, collate_fn=_as_batch)

    # -- on the device ----------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        x = images.unsqueeze(1).float().div_(255)
        if self.hparams.augment and self.trainer is not None and self.trainer.training:
            x = self.augmentation(x)
        return (x - self.mean) / self.std, labels

    # -- what the run records and restores ----------------------------------------------------
    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.std = state["mean"], state["std"]

    def split_summary(self) -> dict | None:
        return self.splits.summary() if self.splits is not None else None

    def split_ids(self) -> dict | None:
        return self.splits.ids if self.splits is not None else None
