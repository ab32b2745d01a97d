"""The test suite's gradient checks live in the library (`layerctl.gradcheck`, which
`layerctl gradcheck` also uses); this module keeps the tests' `from gradcheck import ...`."""

from layerctl.gradcheck import (  # noqa: F401
    STEP,
    assert_close,
    check_graph,
    check_layer,
    init_layer_weights,
    numerical_gradient,
)
