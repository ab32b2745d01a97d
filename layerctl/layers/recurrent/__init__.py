"""Recurrent layers over (batch, timesteps, features): LSTM, GRU and SimpleRNN, one module each,
on the arguments, masks and dropout drawing they share (`base.py`); their time loops live in
`layerctl.ops` (lstm.py, gru.py, simple_rnn.py)."""

from layerctl.layers.recurrent.gru import GRU
from layerctl.layers.recurrent.lstm import LSTM
from layerctl.layers.recurrent.simple_rnn import SimpleRNN

__all__ = ["GRU", "LSTM", "SimpleRNN"]
