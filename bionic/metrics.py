"""Classification metrics shared by validation and test (torchmetrics)."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from bionic import EMOTIONS


def scalar_metrics(num_classes: int = 7) -> MetricCollection:
    """The numbers logged every epoch."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        }
    )


def full_metrics(num_classes: int = 7) -> MetricCollection:
    """Everything the test report needs: per-class figures, confusion matrix, AUROC."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
            "precision": MulticlassPrecision(num_classes, average=None),
            "recall": MulticlassRecall(num_classes, average=None),
            "f1": MulticlassF1Score(num_classes, average=None),
            "confusion": MulticlassConfusionMatrix(num_classes),
        }
    )


def test_report(values: dict[str, torch.Tensor], prefix: str = "test") -> dict:
    """Turn a computed full_metrics() dict into the JSON-able figures of metrics.json, classes by name."""
    confusion = values["confusion"].long()
    per_class = {
        name: {
            "precision": float(values["precision"][i]),
            "recall": float(values["recall"][i]),
            "f1": float(values["f1"][i]),
            "support": int(confusion[i].sum()),
        }
        for i, name in enumerate(EMOTIONS)
    }
    return {
        f"{prefix}/acc": float(values["acc"]),
        f"{prefix}/f1_macro": float(values["f1_macro"]),
        f"{prefix}/auroc": float(values["auroc"]),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion(confusion: list[list[int]], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion, dtype=float)
    rates = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (row-normalized)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
