"""Compute a BERT-style encoder's last layer at the first token only.

A BERT sequence classifier reads one vector: the pooler takes the last layer's output at the
first token (``[CLS]``). That output depends on every token through the last layer's keys and
values, but no other position's output is ever read. So the last layer can compute its keys and
values for all tokens and everything else (query, attention, output projection, feed-forward,
layer norms) for the first token alone:

    q = W_q h₀,  K = W_k H,  V = W_v H,  a = LN(h₀ + W_o softmax(q Kᵀ/√d + m) V),  out = LN(a + FFN(a))

MiniLM has 6 layers, and a layer's matrix products are 2/12 keys and values, 10/12 the rest, so
this removes about 14 % of the model's matrix work (and the last layer's attention and
elementwise work) from every forward and backward pass, with rewards and gradients unchanged
(``tests/test_first_token.py``); a whole MiniLM training step gets 8.5 % faster
(``benchmarks/ablation.py``). Decoders read the last token, and their rows end at different
places; they are not changed here (one layer of SmolLM2's 30 would gain about 3 %).
"""

from __future__ import annotations

import torch
from transformers import BertForSequenceClassification
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import BertLayer, eager_attention_forward


class FirstTokenLayer(torch.nn.Module):
    """A :class:`BertLayer` whose output is its input's first position only, shape (batch, 1, hidden).

    It holds the layer's own submodules under the same names, so weights and state-dict keys are
    the layer's.
    """

    def __init__(self, layer: BertLayer) -> None:
        super().__init__()
        self.attention = layer.attention
        self.intermediate = layer.intermediate
        self.output = layer.output

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
        attention = self.attention.self
        batch, length, _ = hidden_states.shape
        heads, width = attention.num_attention_heads, attention.attention_head_size
        first = hidden_states[:, :1]
        query = attention.query(first).view(batch, 1, heads, width).transpose(1, 2)
        key = attention.key(hidden_states).view(batch, length, heads, width).transpose(1, 2)
        value = attention.value(hidden_states).view(batch, length, heads, width).transpose(1, 2)
        if attention_mask is not None and attention_mask.shape[-2] > 1:
            attention_mask = attention_mask[..., :1, :]
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
        mixed, _ = attend(
            attention,
            query,
            key,
            value,
            attention_mask,
            dropout=attention.dropout.p if attention.training else 0.0,
            scaling=attention.scaling,
        )
        mixed = self.attention.output(mixed.reshape(batch, 1, heads * width), first)
        return self.output(self.intermediate(mixed), mixed)


def compute_first_token_only(model: torch.nn.Module) -> bool:
    """Make a BERT sequence classifier compute its last layer at the first token only; True if it did.

    Its outputs are unchanged; its ``last_hidden_state`` keeps only the first position. Any other
    model is left as it is.
    """
    if type(model) is not BertForSequenceClassification or model.bert.pooler is None:
        return False
    layers = model.bert.encoder.layer
    if isinstance(layers[-1], BertLayer) and not layers[-1].add_cross_attention:
        layers[-1] = FirstTokenLayer(layers[-1])
    return isinstance(layers[-1], FirstTokenLayer)
