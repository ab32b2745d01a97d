"""The `compile:` and `train:` blocks of a spec, including callbacks.

Only plain settings live here; the losses, optimizers and data sources they name are validated by
the models of `losses`, `optimizers` and `data`, so each module owns its own allow-list.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Strict, Tag, model_validator

from layerctl.config import Frozen, by_name_or_mapping
from layerctl.data.sources import DataSource, Validation
from layerctl.training.losses import Loss
from layerctl.training.metrics import MetricEntry
from layerctl.training.optimizers import Optimizer

PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
Number = Annotated[float, Strict()]

Monitor = Annotated[str, Field(description="A history column: loss, val_loss, accuracy, "
                                           "val_accuracy, ...")]
Mode = Literal["auto", "min", "max"]


def _per_output_form(value: Any) -> str:
    """Which of Keras's forms a `loss`/`metrics`/`loss_weights` value takes, so a mistake is
    reported once, against that form (not against every alternative of a union)."""
    if isinstance(value, dict) and "type" not in value and "class_name" not in value:
        return "by_output"
    if isinstance(value, list) and (not value or all(isinstance(v, list) for v in value)):
        return "lists" if value else "one"
    if isinstance(value, list):
        return "in_order"
    return "one"


LossForms = Annotated[
    Union[  # noqa: UP007
        Annotated[Loss, Tag("one")], Annotated[dict[str, Loss], Tag("by_output")],
        Annotated[list[Loss], Tag("in_order")], Annotated[list[Loss], Tag("lists")]],
    Discriminator(_per_output_form)]
MetricForms = Annotated[
    Union[  # noqa: UP007
        Annotated[list[MetricEntry], Tag("one")], Annotated[list[MetricEntry], Tag("in_order")],
        Annotated[dict[str, list[MetricEntry]], Tag("by_output")],
        Annotated[list[list[MetricEntry]], Tag("lists")]],
    Discriminator(_per_output_form)]


class CompileSpec(Frozen):
    """What Keras's `model.compile` takes. With several outputs, `loss`, `loss_weights` and
    `metrics` take Keras's per-output forms: a mapping by output name, or a list in output
    order (one loss for all outputs is applied to each)."""

    loss: LossForms
    optimizer: Optimizer = Field(default="rmsprop", description="Keras's default is rmsprop.")
    metrics: MetricForms = Field(default_factory=list)
    loss_weights: dict[str, Number] | list[Number] | None = None


class EarlyStopping(Frozen):
    """Stop when `monitor` stops improving by more than `min_delta` for `patience` epochs."""

    type: Literal["early_stopping", "EarlyStopping"]
    monitor: Monitor = "val_loss"
    min_delta: Number = 0.0
    patience: NonNegativeInt = 0
    mode: Mode = "auto"
    baseline: Number | None = None
    restore_best_weights: bool = False
    start_from_epoch: NonNegativeInt = 0


class Checkpoint(Frozen):
    """Write the checkpoint every epoch; keep `best.npz` by `monitor` when save_best_only."""

    type: Literal["checkpoint", "model_checkpoint", "ModelCheckpoint"]
    monitor: Monitor = "val_loss"
    mode: Mode = "auto"
    save_best_only: bool = False


class ReduceLROnPlateau(Frozen):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    type: Literal["reduce_lr_on_plateau", "reduce_on_plateau", "ReduceLROnPlateau"]
    monitor: Monitor = "val_loss"
    factor: Annotated[float, Strict(), Field(gt=0.0, lt=1.0)] = 0.1
    patience: NonNegativeInt = 10
    mode: Mode = "auto"
    min_delta: Number = 1e-4
    cooldown: NonNegativeInt = 0
    min_lr: Number = 0.0


Callback = by_name_or_mapping(EarlyStopping, Checkpoint, ReduceLROnPlateau)


class TrainSpec(Frozen):
    """What Keras's `model.fit` takes, plus where the data is and the seed of the run."""

    data: DataSource | None = Field(default=None, description="Training data; or --data.")
    validation: Validation | None = None
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 1
    shuffle: bool = True
    seed: NonNegativeInt = 0
    dtype: Literal["float32", "float64"] = "float32"
    callbacks: list[Callback] = Field(default_factory=list)
    class_weight: dict[int, Number] | None = Field(
        default=None, description="Keras's class_weight: {class: weight}; a class not listed "
        "weighs 1. Weights the training loss only.")
    sample_weight: str | None = Field(
        default=None, description="The CSV column or .npz array holding one weight per sample "
        "(Keras's sample_weight); a validation split keeps its part of them.")
    verbose: Literal["auto", 0, 1, 2] = Field(
        default="auto", description="Keras's verbose: 0 silent, 1 progress bar, 2 one line per "
        "epoch; auto: a progress bar on a terminal, else one line per epoch.")

    @model_validator(mode="after")
    def _one_kind_of_weights(self) -> TrainSpec:
        if self.class_weight is not None and self.sample_weight is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        return self
