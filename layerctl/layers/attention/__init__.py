"""The attention layers, one module each: MultiHeadAttention (projected heads, Keras 3's
EinsumDense weights), Attention (Luong dot or concat scores) and AdditiveAttention (Bahdanau
scores); `scores` holds what they share: masked softmax, causal masks, dropout of the weights."""

from layerctl.layers.attention.additive_attention import AdditiveAttention
from layerctl.layers.attention.attention import Attention
from layerctl.layers.attention.multi_head_attention import MultiHeadAttention

__all__ = ["AdditiveAttention", "Attention", "MultiHeadAttention"]
