"""Keras 1 / early Keras 2 argument names users paste, mapped to what they are called now.

Keras 3 rejects these with "Unrecognized keyword arguments"; layerctl names the modern spelling
instead, so `border_mode: same` becomes "`border_mode` is the Keras 1 name; use `padding`".
"""

from __future__ import annotations

# legacy argument -> modern argument (or an explanation when nothing replaces it)
LEGACY_ARGUMENTS: dict[str, str] = {
    "init": "kernel_initializer",
    "inner_init": "recurrent_initializer",
    "forget_bias_init": "unit_forget_bias",
    "bias": "use_bias",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "stride": "strides",
    "filter_length": "kernel_size",
    "nb_filter": "filters",
    "nb_row": "kernel_size",
    "nb_col": "kernel_size",
    "pool_length": "pool_size",
    "dim_ordering": "data_format (channels_last for 'tf', channels_first for 'th')",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "U_constraint": "recurrent_constraint",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "U_regularizer": "recurrent_regularizer",
    "inner_activation": "recurrent_activation (whose default is now sigmoid, and whose "
                        "hard_sigmoid formula changed in Keras 3)",
    "output_dim": "units",
    "p": "rate",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "beta_init": "beta_initializer",
    "gamma_init": "gamma_initializer",
    "mode": "nothing: BatchNormalization always uses batch statistics in training and moving "
            "statistics in inference (Keras 2 removed `mode`)",
    "consume_less": "nothing (an implementation detail with no effect on results)",
    "batch_input_shape": "input_shape (without the batch axis)",
    "input_length": "input_shape: [steps, features]",
    "weights": "`layerctl train --initial-weights FILE.npz`",
    "lr": "learning_rate",
    "decay": "a learning-rate schedule, e.g. `learning_rate: {type: exponential_decay, ...}`",
}

# top-level `train:` keys from Keras 1 `fit()`
LEGACY_TRAIN_KEYS: dict[str, str] = {
    "nb_epoch": "epochs",
    "samples_per_epoch": "nothing: an epoch is one pass over the data",
}


def legacy_hint(argument: str, accepted: set[str]) -> str | None:
    """The modern spelling of `argument`, unless the layer accepts `argument` itself
    (Embedding's `output_dim` and `input_length` are current names)."""
    if argument in accepted:
        return None
    return LEGACY_ARGUMENTS.get(argument)
