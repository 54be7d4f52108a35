"""What a study measures: top-1 accuracy over N class labels, or a language model's perplexity over N x T next-token
targets. One :class:`Metric` per workload, chosen from its data (:func:`metric_for`); every evaluation, sweep,
per-layer study and co-simulation scores with it, and says which it is (the ``metric`` key of their JSON).

A metric has a direction: accuracy is better higher, perplexity lower. Comparisons go through :meth:`Metric.loss`
(how much worse a value is than a reference, as a fraction: accuracy points lost, or the perplexity's relative
rise), so "within tolerance of fp16" and "the layer that costs most" mean the same for both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Metric:
    """A score of model outputs against targets, with its direction and how it is shown."""

    name: str                  # "accuracy" | "perplexity"
    higher_is_better: bool
    percent: bool              # shown in percent (accuracy) or as it is (perplexity)
    loss_unit: str             # the unit of :meth:`loss` x 100 (a tolerance's unit)
    loss_abbrev: str           # the same, short: "pp" or "%"
    samples: str               # what one test sample is: "images" (or any classified input) or "sequences"

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> float:
        if self.name == "accuracy":
            return float((out.argmax(1) == y).float().mean())
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]).double(), y.reshape(-1), reduction="mean")
        return float(math.exp(float(ce)))

    def loss(self, value: float, ref: float) -> float:
        """How much worse ``value`` is than ``ref``, as a fraction (negative: better): the accuracy lost
        (``ref - value``), or the perplexity's relative rise (``value / ref - 1``)."""
        return ref - value if self.higher_is_better else value / ref - 1.0

    @property
    def scale(self) -> float:
        """The factor from a value to what is shown (100 for percent)."""
        return 100.0 if self.percent else 1.0

    @property
    def suffix(self) -> str:
        """What follows a shown value: ``%`` or nothing."""
        return "%" if self.percent else ""

    def show(self, value: float, width: int = 0) -> str:
        """The value as printed: ``97.22`` (percent, 2 decimals) or ``4.513`` (perplexity, 3), right-aligned in
        ``width`` characters."""
        return f"{self.scale * value:{width}.{2 if self.percent else 3}f}"

    @property
    def label(self) -> str:
        """``accuracy %`` or ``perplexity``: a table's or an axis's name for the values :meth:`show` prints."""
        return f"{self.name} %" if self.percent else self.name


ACCURACY = Metric("accuracy", True, True, "percentage points", "pp", "images")
PERPLEXITY = Metric("perplexity", False, False, "% of the reference's perplexity", "%", "sequences")
METRICS = {m.name: m for m in (ACCURACY, PERPLEXITY)}


def metric_for(out_shape: tuple[int, ...], y: torch.Tensor, where: str = "y") -> Metric:
    """The metric of outputs of shape ``out_shape`` (N x C logits, or N x T x V next-token logits) against
    targets ``y`` (N labels or N x T token targets), after checking every target is one the model can output
    (a one-line ``ValueError`` naming the first that is not)."""
    if y.ndim == 1 and len(out_shape) == 2:
        metric, classes, what = ACCURACY, int(out_shape[1]), "output classes"
    elif y.ndim == 2 and len(out_shape) == 3:
        if tuple(y.shape[1:]) != tuple(out_shape[1:2]):
            raise ValueError(f"{where}: targets of {y.shape[1]} tokens per sequence, but the model outputs "
                             f"{out_shape[1]} positions")
        metric, classes, what = PERPLEXITY, int(out_shape[2]), "vocabulary entries"
    else:
        raise ValueError(f"{where}: {y.ndim}-D targets for a model whose output is {len(out_shape)}-D: give N class "
                         f"labels for N x C outputs, or N x T next-token targets for N x T x V outputs")
    bad = ((y < 0) | (y >= classes)).reshape(-1).nonzero()
    if bad.numel():
        i = int(bad[0])
        index = i if y.ndim == 1 else (i // y.shape[1], i % y.shape[1])
        raise ValueError(f"{where}[{str(index).strip('()').replace(' ', '')}] = {int(y.reshape(-1)[i])} is not one "
                         f"of the model's {classes} {what} (0..{classes - 1}); {bad.numel()} {'label' if metric is ACCURACY else 'target'}(s) out of range")
    return metric


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """How often two outputs predict the same class (or next token): the fraction of equal argmaxes."""
    return float((a.argmax(-1) == b.argmax(-1)).float().mean())
