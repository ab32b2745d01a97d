"""Pure NumPy math behind the layer classes: convolution, max pooling, the recurrences (LSTM,
GRU, SimpleRNN)."""
