"""A small GPT (ch. 5, section 5.3): a decoder-only Transformer that predicts the next token.

Built from the chapter 3 blocks (`models/attention.py`): token embedding + positions (`learned` as in GPT, or
`sinusoidal`), `num_layers` self-attention blocks with the causal mask (position i sees only j <= i: the
decoder's masked self-attention of chapter 4, without cross-attention), a final layer norm (pre-norm blocks),
and the output layer over the vocabulary. `tie_embeddings=true` (GPT-2's choice) uses the token embedding
matrix as the output layer: the logit of token w is h . e_w.

forward(input_ids [B, L], padding_mask [B, L] True at padding, optional) -> logits [B, L, V];
logits[:, t] is the distribution of token t + 1. From the data (`Provided`): the vocabulary size and the block
size (the longest context the model reads: its positions, and the window kept while generating).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from leedl_cli.contract import Provided
from leedl_cli.models.attention import (
    Dropout,
    PositionalEncoding,
    PositionalKind,
    TransformerEncoder,
    Width,
    heads_problems,
)


class GPT(nn.Module):
    def __init__(self, vocab_size: Provided[int], block_size: Provided[int] = 512, d_model: Width = 192,
                 num_layers: Width = 4, num_heads: Width = 4, d_ff: Width | None = None, dropout: Dropout = 0.1,
                 positional_encoding: PositionalKind = "learned", tie_embeddings: bool = True,
                 norm_first: bool = True) -> None:
        super().__init__()
        self.vocab_size, self.d_model, self.block_size = int(vocab_size), int(d_model), int(block_size)
        self.embed = nn.Embedding(self.vocab_size, d_model)
        self.positions = PositionalEncoding(positional_encoding, d_model, self.block_size)
        self.drop = nn.Dropout(dropout)
        self.blocks = TransformerEncoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.lm_head = nn.Linear(d_model, self.vocab_size, bias=False)
        self.apply(self._init)
        if tie_embeddings:
            self.lm_head.weight = self.embed.weight
        # GPT-2: the projections into the residual stream scaled down by 1/sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith(("attn.w_o.weight", "ff.3.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * num_layers))

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return heads_problems(options)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.drop(self.positions(self.embed(input_ids)))
        h, _ = self.blocks(x, key_padding_mask=padding_mask, causal=True)
        return self.lm_head(h)

    def next_token_logits(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """[N, V] logits of the next token after `tokens` [N, t]: the `step` of `leedl_cli.decoding.generate`
        (the last block_size tokens are seen when a sequence grows longer)."""
        return self.forward(tokens[:, -self.block_size:])[:, -1]
