"""`fit`: epochs over a dataset with validation, callbacks, checkpoints and exact resume.

State that decides what happens next (weights, optimizer slots, RNG states, the position inside
an epoch and that epoch's shuffled order, callback states, history) is checkpointed after every
epoch and when the user interrupts, so a resumed run continues bit for bit where it stopped.
Interruption is cooperative: `should_stop()` is asked between steps, never inside an update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from layerctl.data import Dataset, batches
from layerctl.errors import Location, SpecError, WeightsError
from layerctl.graph import Graph
from layerctl.training.adapt import adapt_layers
from layerctl.training.callbacks import (
    CheckpointCallback,
    EarlyStoppingCallback,
    ReduceLROnPlateauCallback,
)
from layerctl.training.loop import (
    NonFiniteLoss,
    Trainer,
    class_weight_to_sample_weight,
    take,
)
from layerctl.training.runs import (
    RunFolder,
    generator_state,
    load_checkpoint,
    restore_generator,
    save_checkpoint,
)
from layerctl.training.spec import (
    Checkpoint,
    CompileSpec,
    EarlyStopping,
    ReduceLROnPlateau,
    TrainSpec,
)
from layerctl.weights import check_weights


class Reporter(Protocol):
    def epoch_begin(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, loss: float) -> None: ...
    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    stopped_early_at: int | None = None
    best_epoch: int | None = None
    weights_epoch: int | None = None  # the epoch (0-based) whose weights weights.npz holds
    already_finished: bool = False  # resume found a finished run and changed nothing


@dataclass
class _Position:
    """Where training is: the epoch in progress, its next batch, and its order of samples."""

    epoch: int = 0
    batch: int = 0
    order: np.ndarray | None = None


def fit(
    graph: Graph,
    compile_spec: CompileSpec,
    train_spec: TrainSpec,
    train: Dataset,
    validation: Dataset | None,
    run: RunFolder,
    reporter: Reporter,
    *,
    rng: np.random.Generator,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_epoch_end: Callable[[FitResult], None] | None = None,
) -> FitResult:
    """Train `graph` in place; write checkpoints, history and weights into `run`.
    `on_epoch_end(result)` runs after each epoch's history is written (the report page)."""
    trainer = Trainer(graph, compile_spec)
    callbacks = _make_callbacks(train_spec)
    result, position = FitResult(), _Position()
    accumulator = trainer.accumulator(train.y)
    best_weights: dict[str, np.ndarray] | None = None
    if resume:
        rng, best_weights, stopped_early = _restore(
            run, graph, trainer, callbacks, result, position, accumulator
        )
        _check_position(position, len(train), run)
        if stopped_early or (position.epoch >= train_spec.epochs and position.order is None):
            result.already_finished = True  # training on would go past the run's end
            return result
    else:  # a resumed run has its adapted statistics in the checkpoint
        adapt_layers(graph, train.x, train_spec.batch_size)
    size = train_spec.batch_size
    steps = -(-len(train) // size)
    weights = train.sample_weight
    if train_spec.class_weight is not None:
        if isinstance(train.y, dict):
            raise SpecError("`class_weight` is only supported for Models with a single output.")
        weights = class_weight_to_sample_weight(train.y, train_spec.class_weight)
    while position.epoch < train_spec.epochs:
        epoch = position.epoch
        if position.order is None:  # a new epoch: draw its order from the run's generator
            position.order = np.concatenate(
                list(batches(len(train), size, train_spec.shuffle, rng))
            )
            accumulator = trainer.accumulator(train.y)
        reporter.epoch_begin(epoch, train_spec.epochs, steps, position.batch)
        while position.batch < steps:
            if should_stop():
                _save(
                    run, graph, trainer, callbacks, result, position, rng, accumulator, best_weights
                )
                result.interrupted = True
                return result
            index = position.order[position.batch * size : (position.batch + 1) * size]
            try:
                loss = trainer.train_step(take(train.x, index), take(train.y, index), rng,
                                          accumulator,
                                          None if weights is None else weights[index])
            except NonFiniteLoss as error:
                raise NonFiniteLoss(
                    f"epoch {epoch + 1}, batch {position.batch + 1}: {error.message}; training "
                    f"stopped and the last good checkpoint is kept in {run.checkpoint}",
                    hint="lower the learning_rate, or check the data for NaN/inf",
                ) from None
            position.batch += 1
            reporter.step(position.batch, loss)
        logs = {"epoch": epoch + 1, **accumulator.logs()}
        if validation is not None:
            logs.update(trainer.evaluate(validation.x, validation.y, size,
                                         validation.sample_weight).logs("val_"))
        logs["learning_rate"] = trainer.optimizer.learning_rate_now()
        result.history.append(logs)
        reporter.epoch_end(epoch, logs)
        stop, best_weights = _end_of_epoch(
            epoch, logs, graph, trainer, callbacks, run, result, best_weights
        )
        position.epoch, position.batch, position.order = epoch + 1, 0, None
        _save(run, graph, trainer, callbacks, result, position, rng, accumulator, best_weights,
              stopped_early=stop)
        run.write_history(result.history)
        if on_epoch_end is not None:
            on_epoch_end(result)
        if stop:
            result.stopped_early_at = epoch
            break
    if best_weights is not None:  # EarlyStopping(restore_best_weights): Keras restores at the end
        graph.set_weights(best_weights)
    if "checkpoint" not in callbacks or not callbacks["checkpoint"].spec.save_best_only:
        run.write_weights(graph.get_weights())
        last = len(result.history) - 1
        result.weights_epoch = result.best_epoch if best_weights is not None else last
    return result


def _make_callbacks(train_spec: TrainSpec) -> dict[str, Any]:
    callbacks: dict[str, Any] = {}
    for spec in train_spec.callbacks:
        if isinstance(spec, EarlyStopping):
            callbacks["early_stopping"] = EarlyStoppingCallback(spec)
        elif isinstance(spec, Checkpoint):
            callbacks["checkpoint"] = CheckpointCallback(spec)
        elif isinstance(spec, ReduceLROnPlateau):
            callbacks["reduce_lr_on_plateau"] = ReduceLROnPlateauCallback(spec)
    return callbacks


def _end_of_epoch(epoch, logs, graph, trainer, callbacks, run, result, best_weights):
    stop = False
    if "early_stopping" in callbacks:
        early = callbacks["early_stopping"]
        stop, is_best = early.on_epoch_end(epoch, logs)
        if is_best:
            result.best_epoch = epoch
            if early.spec.restore_best_weights:
                best_weights = graph.get_weights()
    if "checkpoint" in callbacks and callbacks["checkpoint"].on_epoch_end(epoch, logs):
        run.write_weights(graph.get_weights())
        result.weights_epoch = epoch
    if "reduce_lr_on_plateau" in callbacks:
        new_rate = callbacks["reduce_lr_on_plateau"].on_epoch_end(
            epoch, logs, trainer.optimizer.learning_rate_now()
        )
        if new_rate is not None:
            trainer.optimizer.set_learning_rate(new_rate)
    return stop, best_weights


def _save(run, graph, trainer, callbacks, result, position, rng, accumulator, best_weights,
          stopped_early=False):
    extra = {}
    if position.order is not None:
        extra["order"] = position.order
    if best_weights is not None:
        extra.update({f"best/{k}": v for k, v in best_weights.items()})
    state = {
        "epoch": position.epoch,
        "batch": position.batch,
        "rng": generator_state(rng),
        "layer_rngs": {name: generator_state(g) for name, g in graph.layer_rngs.items()},
        "history": result.history,
        "best_epoch": result.best_epoch,
        "weights_epoch": result.weights_epoch,
        "callbacks": {name: cb.state() for name, cb in callbacks.items()},
        "accumulator": accumulator.state() if position.order is not None else None,
        "stopped_early": stopped_early,
    }
    save_checkpoint(run, graph.get_weights(), trainer.optimizer.state(), state, extra)


def _restore(run, graph, trainer, callbacks, result, position, accumulator):
    checkpoint = load_checkpoint(run.checkpoint)
    expected = {key: value.shape for key, value in graph.weights.items()}
    problems = check_weights(checkpoint.weights, expected, run.checkpoint)
    if problems:
        raise WeightsError(problems=problems)
    try:
        return _restore_state(checkpoint, graph, trainer, callbacks, result, position,
                              accumulator)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as error:
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise WeightsError(f"the checkpoint's state is damaged ({detail[:200]}); nothing was "
                           "resumed", Location(str(run.checkpoint))) from None


def _check_position(position, samples, run):
    """A checkpoint's position must be one this run could have saved."""
    def integer(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    order = position.order
    if not (integer(position.epoch) and integer(position.batch)) or (order is not None and (
            order.ndim != 1 or order.dtype.kind not in "iu" or len(order) != samples
            or not np.array_equal(np.sort(order), np.arange(samples)))):
        raise WeightsError("the checkpoint's position (epoch, batch, order) is damaged or from "
                           "other data; nothing was resumed", Location(str(run.checkpoint)))


def _restore_state(checkpoint, graph, trainer, callbacks, result, position, accumulator):
    state = checkpoint.state
    for key, kind in (("history", list), ("callbacks", dict), ("layer_rngs", dict),
                      ("best_epoch", (int, type(None)))):
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise TypeError(f"`{key}` is a {type(state[key]).__name__}")
    if not all(isinstance(row, dict) for row in state["history"]):
        raise TypeError("`history` rows are not records")
    graph.set_weights(checkpoint.weights)
    trainer.optimizer.load_state(checkpoint.optimizer)
    for name, saved in state["layer_rngs"].items():
        graph.layer_rngs[name].bit_generator.state = saved
    for name, callback in callbacks.items():
        if name in state["callbacks"]:
            callback.load_state(state["callbacks"][name])
    result.history, result.best_epoch = state["history"], state["best_epoch"]
    result.weights_epoch = state.get("weights_epoch")
    position.epoch, position.batch = state["epoch"], state["batch"]
    position.order = checkpoint.arrays.get("order")
    if state["accumulator"] is not None:
        accumulator.load_state(state["accumulator"])
    best = {
        k.removeprefix("best/"): v for k, v in checkpoint.arrays.items() if k.startswith("best/")
    }
    return restore_generator(state["rng"]), (best or None), state.get("stopped_early") is True
