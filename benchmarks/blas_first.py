"""Imported before NumPy by every benchmark that times layerctl's NumPy code: cuts OpenBLAS's
idle-thread spin exactly as the `layerctl` command does (`layerctl.runtime.configure_blas`),
which only works before NumPy loads OpenBLAS."""

from layerctl.runtime import configure_blas

configure_blas()
