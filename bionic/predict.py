"""PLACEHOLDER for the cli branch's tests only: the data helper's bionic/predict.py replaces it at merge.

Contract 1 of the helpers' brief: PredictionWriter(run_dir) writes <run_dir>/predictions.csv (csv
module) from trainer.datamodule's records and predict_step's softmax outputs.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from bionic import EMOTIONS


class PredictionWriter(BasePredictionWriter):
    def __init__(self, run_dir):
        super().__init__(write_interval="epoch")
        self.run_dir = Path(run_dir)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        dm = trainer.datamodule
        records = getattr(dm, "predict_records", None) or [{"file": f} for f in dm.predict_files]
        probs = torch.cat(predictions) if predictions else torch.empty(0, len(EMOTIONS))
        out = self.run_dir / "predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "emotion", *(f"p_{e}" for e in EMOTIONS)])
            for rec, p in zip(records, probs.tolist()):
                writer.writerow([rec["file"], EMOTIONS[max(range(len(p)), key=p.__getitem__)], *(f"{v:.4f}" for v in p)])
        sys.stdout.write(out.read_text())
        print(f"wrote {out}", file=sys.stderr)
