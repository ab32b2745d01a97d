"""Taking a model elsewhere: a spec's Plan plus trained weights as an ONNX model or a Keras 3 model.

This package owns `layerctl export`'s library side. `onnx.py` (with `onnx_graph.py` and
`onnx_recurrent.py`) builds ONNX graphs with `onnx.helper`; `keras.py` builds the functional Keras
model with the same layer names and copies the weights by name. Both optional packages are
imported only when an export runs (never at `import layerctl`), and a missing one becomes an
`ExportError` that says exactly what to install. Everything that cannot be exported is an
`ExportError` naming the layer and the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from layerctl.errors import LayerctlError

if TYPE_CHECKING:
    import numpy as np

    from layerctl.plan import Plan

DEFAULT_OPSET = 17
FORMATS = ("onnx", "keras")
SUFFIXES = {".onnx": "onnx", ".keras": "keras"}


class ExportError(LayerctlError):
    """The model (or this machine) cannot produce the requested format."""

    code = "LC500"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise an ExportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{purpose} needs the `{module}` package, which is not installed",
                          hint=f"pip install 'layerctl[{extra}]'") from None


def format_of(path: str | Path) -> str | None:
    """The format a file name implies (.onnx, .keras), or None."""
    return SUFFIXES.get(Path(path).suffix.lower())


def export_model(plan: Plan, weights: Mapping[str, np.ndarray], path: str | Path,
                 format: str, opset: int = DEFAULT_OPSET) -> None:
    """Write `plan` with `weights` ("layer/weight" → array) to `path` in `format`, atomically."""
    if format == "onnx":
        require("onnx", "onnx", "exporting to ONNX")
        from layerctl.export.onnx import export_onnx

        export_onnx(plan, weights, path, opset)
    elif format == "keras":
        from layerctl.export.keras import export_keras

        export_keras(plan, weights, path)
    else:
        raise ExportError(f"unknown export format '{format}'",
                          hint="choose one of: " + ", ".join(FORMATS))


__all__ = ["DEFAULT_OPSET", "FORMATS", "ExportError", "export_model", "format_of", "require"]
