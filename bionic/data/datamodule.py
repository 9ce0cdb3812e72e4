"""The FER-2013 LightningDataModule: cached uint8 tensors in, normalized (augmented) batches out."""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt, restricted_number_type
from torch.utils.data import DataLoader, Dataset

from bionic.data.augment import Augmentation
from bionic.data.fer2013 import FERSplits, read_fer2013
from bionic.errors import BionicError

# FER-2013 Training-set statistics, used until a fit recomputes them from its own train split
# (and restored from the checkpoint for test/predict).
FER_MEAN, FER_STD = 0.5077, 0.2550

# In the signature, so the command line refuses a bad value at parse time, before any data loads.
Fraction = restricted_number_type("Fraction", float, [(">=", 0), ("<", 1)], docstring="a number in [0, 1)")


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
        predict_path: photo or folder of photos for ``predict``; any size or colour.
        faces: in ``predict``, find the faces in each photo and classify each face (cropped like
            FER-2013); false classifies each whole image. 48x48 grey images are taken as face
            crops either way.
        num_workers: DataLoader workers; 0 is right here because batches are slices of a tensor.
    """

    def __init__(
        self,
        root: str = "data/fer2013",
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt = 512,
        val_fraction: Fraction = 0.1,
        split_seed: int = 0,
        augment: bool = True,
        augmentation: Augmentation = Augmentation(),
        cache_dir: str | None = None,
        predict_path: str | None = None,
        faces: bool = True,
        num_workers: NonNegativeInt = 0,
        progress: bool = True,
    ):
        super().__init__()
        # The same limits for a DataModule built in Python, where the annotations are not enforced.
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise BionicError(f"data.{name} must be a positive integer, not {value}")
        if not 0 <= val_fraction < 1:
            raise BionicError(f"data.val_fraction must be in [0, 1), not {val_fraction}")
        self.save_hyperparameters()
        self.augmentation = augmentation
        self.splits: FERSplits | None = None
        self.mean, self.std = FER_MEAN, FER_STD
        # For predict: one dict per model input, in dataset order, and one per photo (bionic.data.photos).
        self.predict_records: list[dict] = []
        self.predict_photos: list[dict] = []

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
        from bionic.data.photos import load_predict_inputs

        inputs = load_predict_inputs(self.hparams.predict_path, self.hparams.faces)
        self.predict_images = inputs.images
        self.predict_records, self.predict_photos = inputs.records, inputs.photos

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
