"""Sequence models trained from scratch (chapter 3): the shared input layer, pooling, and two baselines.

Every model here maps token ids [B, L] (0 = padding) to per-token logits [B, L, C] (N inputs -> N labels,
`pooling: none`) or, with `pooling: mean | max | first`, to one vector per sequence -> logits [B, C]
(N -> 1, sentiment). The task chooses: conf/task_model/sentiment/<model>.yaml sets `model.pooling: mean`.
From the data (`Provided`): the vocabulary size, the class count, the padding and unknown ids, and the sizes of
the per-word feature vocabularies where the data has them (UD from scratch).

`TokenFeatures`: the word's embedding, plus (when the data module supplies them) the embedding of its suffix,
of its shape and a character CNN over its letters — what lets a tagger guess the tag of a word it never saw. During training `word_dropout`
replaces a fraction of the words by [UNK], so the [UNK] embedding is trained in context.

- `WindowMLP`: the book's first attempt (section 3.1): a fully connected network sees each word together with
  its `window` neighbours on each side, and nothing else.
- `RNNTagger`: a (bidirectional) LSTM or GRU over the whole sentence (section 3.7's comparison).
"""
from __future__ import annotations

from typing import Annotated, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.contract import NonNegative, Provided, Range
from leedl_cli.data.tokenized import WordFeatureSizes
from leedl_cli.errors import LeedlError
from leedl_cli.models.attention import Dropout, Width

Pooling = Literal["none", "mean", "max", "first"]
POOLINGS = get_args(Pooling)
RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
Cell = Literal[tuple(RNN_CELLS)]       # the recurrent cell: one of RNN_CELLS


def pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """[B, L, D] + mask [B, L] (True = real token) -> [B, D] (or h itself for `none`)."""
    if how == "none":
        return h
    if how == "mean":
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "max":
        return h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    if how == "first":
        return h[:, 0]
    raise LeedlError(f"pooling={how!r}: one of {', '.join(POOLINGS)}")


class CharCNN(nn.Module):
    """A word from its characters: embeddings -> 1-d convolution (width 3) -> max over the characters."""

    def __init__(self, char_vocab_size: int, char_dim: int = 32, filters: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(char_vocab_size, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, 3, padding=1)
        self.out_dim = filters

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:          # [B, L, C] -> [B, L, filters]
        b, n, c = char_ids.shape
        x = self.embed(char_ids.reshape(b * n, c)).transpose(1, 2)      # [B*L, char_dim, C]
        h = torch.relu(self.conv(x)).masked_fill((char_ids.reshape(b * n, 1, c) == 0), 0.0)
        return h.amax(-1).reshape(b, n, -1)


class TokenFeatures(nn.Module):
    """Embeddings of word (+ suffix + shape + characters) ids, concatenated and projected to `dim`."""

    def __init__(self, vocab_size: int, dim: int, embed_dim: int | None = None, suffix_vocab_size: int = 0,
                 shape_vocab_size: int = 0, feature_dim: int = 32, word_dropout: float = 0.0,
                 unk_token_id: int = 1, dropout: float = 0.0, char_vocab_size: int = 0, char_filters: int = 64) -> None:
        super().__init__()
        embed_dim = embed_dim or dim
        self.words = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.suffixes = nn.Embedding(suffix_vocab_size, feature_dim, padding_idx=0) if suffix_vocab_size else None
        self.shapes = nn.Embedding(shape_vocab_size, feature_dim // 2, padding_idx=0) if shape_vocab_size else None
        self.chars = CharCNN(char_vocab_size, feature_dim, char_filters) if char_vocab_size and char_filters else None
        total = embed_dim + (feature_dim if self.suffixes else 0) + (feature_dim // 2 if self.shapes else 0) + \
            (char_filters if self.chars else 0)
        self.proj = nn.Linear(total, dim) if total != dim else nn.Identity()
        self.word_dropout, self.unk = float(word_dropout), int(unk_token_id)
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids, suffix_ids=None, shape_ids=None, char_ids=None) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(input_ids.shape, device=input_ids.device) < self.word_dropout) & (input_ids != 0)
            input_ids = input_ids.masked_fill(drop, self.unk)
        parts = [self.words(input_ids)]
        for module, ids, name in ((self.suffixes, suffix_ids, "suffix_ids"), (self.shapes, shape_ids, "shape_ids"),
                                  (self.chars, char_ids, "char_ids")):
            if module is None:
                continue
            if ids is None:
                raise LeedlError(f"this model was built with {name} features, but the batch has none "
                                 f"(model.use_features=false for data without them)")
            parts.append(module(ids))
        return self.drop(self.proj(torch.cat(parts, dim=-1)))


class SequenceModel(nn.Module):
    """Base: TokenFeatures -> `encode` (subclass) -> pooling -> classifier."""

    def __init__(self, vocab_size: Provided[int], num_classes: Provided[int], dim: int, embed_dim: int | None = None,
                 word_features: Provided[WordFeatureSizes | None] = None, feature_dim: Annotated[int, Range(2)] = 32,
                 word_dropout: Dropout = 0.0, unk_token_id: Provided[int] = 1, dropout: Dropout = 0.1,
                 pooling: Pooling = "none", use_features: bool = True, pad_token_id: Provided[int] = 0,
                 char_filters: Annotated[int, NonNegative] = 64) -> None:
        super().__init__()
        if pad_token_id != 0:
            raise LeedlError(f"from-scratch sequence models need padding id 0; the data's vocabulary pads with "
                             f"{pad_token_id}")
        self.pooling = pooling
        sizes = word_features if use_features and word_features is not None else WordFeatureSizes(0, 0, 0)
        self.embed = TokenFeatures(vocab_size, dim, embed_dim, sizes.suffix_vocab_size, sizes.shape_vocab_size,
                                   feature_dim, word_dropout, unk_token_id, dropout, sizes.char_vocab_size,
                                   char_filters)

    def encode(self, x: torch.Tensor, mask: torch.Tensor, **kwargs) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, input_ids, suffix_ids=None, shape_ids=None, char_ids=None, **kwargs) -> torch.Tensor:
        mask = input_ids != 0
        h = self.encode(self.embed(input_ids, suffix_ids, shape_ids, char_ids), mask, **kwargs)
        return self.classifier(pool(h, mask, self.pooling))


class WindowMLP(SequenceModel):
    """Each word with `window` neighbours on each side (zero vectors beyond the sentence) -> MLP -> its tag."""

    def __init__(self, vocab_size: Provided[int], num_classes: Provided[int], window: Annotated[int, NonNegative] = 2,
                 embed_dim: Width = 128, hidden: Width = 256, dropout: Dropout = 0.2, **kwargs) -> None:
        super().__init__(vocab_size, num_classes, embed_dim, embed_dim, dropout=dropout, **kwargs)
        self.window = int(window)
        width = (2 * self.window + 1) * embed_dim
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(hidden, num_classes)

    def encode(self, x, mask, **kwargs):
        x = x * mask.unsqueeze(-1)
        w = self.window
        padded = F.pad(x, (0, 0, w, w))                                      # [B, L + 2w, D]
        windows = padded.unfold(1, 2 * w + 1, 1)                             # [B, L, D, 2w + 1]
        windows = windows.transpose(2, 3).reshape(x.shape[0], x.shape[1], -1)
        return self.mlp(windows)


class RNNTagger(SequenceModel):
    """A (bi)directional LSTM or GRU over the sentence (packed: padding never enters the recurrence)."""

    def __init__(self, vocab_size: Provided[int], num_classes: Provided[int], cell: Cell = "lstm",
                 embed_dim: Width = 128, hidden: Width = 128, num_layers: Width = 1, bidirectional: bool = True,
                 dropout: Dropout = 0.2, **kwargs) -> None:
        super().__init__(vocab_size, num_classes, embed_dim, embed_dim, dropout=dropout, **kwargs)
        self.rnn = RNN_CELLS[cell](embed_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                           dropout=dropout if num_layers > 1 else 0.0)
        out = hidden * (2 if bidirectional else 1)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(out, num_classes)

    def encode(self, x, mask, **kwargs):
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.drop(out)
