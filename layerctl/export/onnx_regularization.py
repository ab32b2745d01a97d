"""ONNX converters of the noise and regularization layers: exported models are inference graphs,
where SpatialDropout1D/2D, GaussianNoise, GaussianDropout, AlphaDropout and
ActivityRegularization (whose penalty only exists in training) are all the identity."""

from __future__ import annotations


def _identity(g, node, xs, masks, w, want_mask):
    return xs[0], None


REGULARIZATION_CONVERTERS = {
    name: _identity for name in ("SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
                                 "GaussianDropout", "AlphaDropout", "ActivityRegularization")
}
