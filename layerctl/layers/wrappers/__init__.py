"""Wrappers: layers around another layer given as a `layer:` mapping. Bidirectional runs a
recurrent layer both ways over time; TimeDistributed applies any layer to every time step. The
shared `layer:` field and weight naming live in `wrapper.py`."""

from layerctl.layers.wrappers.bidirectional import Bidirectional
from layerctl.layers.wrappers.time_distributed import TimeDistributed
from layerctl.layers.wrappers.wrapper import Wrapper, inner_name

__all__ = ["Bidirectional", "TimeDistributed", "Wrapper", "inner_name"]
