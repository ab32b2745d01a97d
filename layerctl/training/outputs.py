"""`compile:` per model output: which loss, weight and metrics each output gets, as Keras 3's
`compile` reads them (DESIGN §3b).

`loss` is one loss (applied to every output), a mapping by output name, or a list in output
order; `loss_weights` likewise (default 1 each); `metrics` a list (one output), a mapping by
output name, or a list of lists in output order. History names follow Keras: with one output
`loss`, `accuracy`; with several `loss` (the weighted sum), `<output>_loss`,
`<output>_<metric>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from layerctl.errors import Problem, SpecError, did_you_mean
from layerctl.training.losses import parse_loss


@dataclass(frozen=True)
class OutputCompile:
    """What one output is trained with."""

    ref: str  # the output's reference (`label`, `lstm.1`)
    loss: Any  # a loss model
    weight: float | None  # None: unweighted (the one-output case, bit for bit as before)
    metrics: tuple[str, ...]
    prefix: str  # history-name prefix: "" for one output, else "<output>_"


def per_output(compile_spec, outputs: tuple[str, ...]) -> list[OutputCompile]:
    """One OutputCompile per model output; SpecError naming each mismatch."""
    several = len(outputs) > 1
    losses = _by_output(compile_spec.loss, outputs, "loss", broadcast=True)
    weights = (_by_output(compile_spec.loss_weights, outputs, "loss_weights", broadcast=False)
               if compile_spec.loss_weights is not None else dict.fromkeys(outputs, None))
    metrics = _metrics(compile_spec.metrics, outputs)
    return [
        OutputCompile(ref, parse_loss(losses[ref]),
                      None if weights[ref] is None and not several else float(
                          1.0 if weights[ref] is None else weights[ref]),
                      tuple(metrics.get(ref, ())), f"{ref}_" if several else "")
        for ref in outputs
    ]


def _by_output(value: Any, outputs: tuple[str, ...], what: str, broadcast: bool) -> dict:
    if isinstance(value, dict) and not _is_loss_mapping(value):
        _check_names(value, outputs, what)
        missing = [o for o in outputs if o not in value]
        if missing and what == "loss":
            raise SpecError(f"`compile.loss` gives no loss for output(s) "
                            f"{', '.join(missing)}",
                            hint="every output needs a loss (or give one loss for all)")
        return {o: value.get(o) for o in outputs}
    if isinstance(value, list):
        if len(value) != len(outputs):
            raise SpecError(f"`compile.{what}` lists {len(value)} entries for "
                            f"{len(outputs)} output(s) ({', '.join(outputs)})")
        return dict(zip(outputs, value, strict=True))
    if not broadcast and len(outputs) > 1:
        raise SpecError(f"`compile.{what}` needs one entry per output: a mapping by output "
                        "name or a list in output order")
    return dict.fromkeys(outputs, value)


def _is_loss_mapping(value: dict) -> bool:
    """`{type: mse, ...}` is one loss, not a mapping by output."""
    return "type" in value or "class_name" in value


def _metrics(value: Any, outputs: tuple[str, ...]) -> dict[str, list[str]]:
    if isinstance(value, dict):
        _check_names(value, outputs, "metrics")
        return {o: list(value.get(o, [])) for o in outputs}
    if value and all(isinstance(v, list) for v in value):
        if len(value) != len(outputs):
            raise SpecError(f"`compile.metrics` lists {len(value)} lists for {len(outputs)} "
                            "output(s)")
        return dict(zip(outputs, value, strict=True))
    if value and len(outputs) > 1:
        raise SpecError("with several outputs, `compile.metrics` is a mapping by output name "
                        "(or a list of lists in output order), as in Keras 3",
                        hint=f"e.g. metrics: {{{outputs[0]}: {list(value)}}}")
    return {outputs[0]: list(value)}


def _check_names(value: dict, outputs: tuple[str, ...], what: str) -> None:
    unknown = [key for key in value if key not in outputs]
    if unknown:
        raise SpecError(problems=[
            Problem(f"`compile.{what}` names '{key}', which is not a model output",
                    hint=did_you_mean(key, outputs) or "outputs: " + ", ".join(outputs),
                    code="LC110")
            for key in unknown])
