"""Pure NumPy math behind the layer classes: convolution, max pooling, the LSTM recurrence."""
