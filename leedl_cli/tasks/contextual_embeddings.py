"""Why BERT works: contextual embeddings (ch. 5, section 5.2.2): `task=contextual_embeddings`, no training.

The book: BERT gives the same character a different vector in each context (苹果 in 吃苹果 vs 苹果手机), and the
vectors of one meaning are closer to each other than to the other meaning's. leedl measures it on sentences of
ambiguous English words (`leedl_cli.data.ambiguous_words`: bank, apple, bat, ... two senses each).

For every sentence, the word's vector is the mean of the vectors of its word pieces (the pieces whose character
offsets, from the tokenizer, overlap the word) at every layer of the backbone:

- `control`: the word-piece embeddings alone (`embeddings.word_embeddings` of the pieces): one vector per word
  type, the same in every sentence, so every similarity is 1 and the gap is exactly 0. This is what a model
  without context (a word2vec-style table) would give.
- `layer 0`: the output of BERT's embedding layer (hidden_states[0]) = LayerNorm(word-piece + position +
  token-type embedding). The position embedding differs with where the word stands, so the vectors of one word
  differ a little between sentences; position does not depend on the sense, so the gap stays near 0.
- `layer 1..L`: the outputs of the L Transformer layers (self-attention mixes in the context).

Per word and layer: the cosine similarities of the word's vectors in all its sentences; `within` is the mean over
pairs of different sentences with the same sense, `cross` the mean over pairs with different senses, and the
sense gap = within - cross (> 0: the meanings are told apart).

Logged (`test/`): `sense_gap_control`, `sense_gap_layer{L}` for every layer (mean over the words),
`sense_gap_last` (the last layer) with `_std` and `_min` over the words and `_low` = mean - std (the lower end of
the band over the words), `sense_gap_last_<word>` per word, `sense_gap_growth` = last-layer gap - first
Transformer layer's gap (mean over words; `_min`, `_low` likewise), `within_sense_sim_last`, `cross_sense_sim_last`.
results.json (`contextual_embeddings`): per word its pieces, senses, sentence counts and gap at every layer.
plots/: `similarity_<word>.png` (cosine-similarity heat maps at the control and the last layer, sentences grouped
by sense) and `sense_gap_vs_layer.png`.

From the data (`Provided`): the sentences and the backbone's tokenizer.
"""
from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from leedl_cli.contract import Provided
from leedl_cli.data.ambiguous_words import SenseSentence
from leedl_cli.errors import LeedlError
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
CONTROL = "control"


def word_pieces(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Token positions whose characters overlap the word's [start, end); special tokens ((0, 0)) never do."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """[N, D] -> [N, N] cosine similarities, in float64."""
    x = F.normalize(vectors.double(), dim=-1)
    return x @ x.T


def sense_gap(vectors: torch.Tensor, senses: list[str]) -> tuple[float, float, float]:
    """(gap, within, cross): mean cosine similarity over pairs of different sentences with the same sense
    (within) and with different senses (cross), gap = within - cross."""
    sims = cosine_matrix(vectors)
    labels = {s: i for i, s in enumerate(dict.fromkeys(senses))}
    ids = torch.tensor([labels[s] for s in senses])
    same = ids[:, None] == ids[None, :]
    other = ~torch.eye(len(senses), dtype=torch.bool)
    within, cross = float(sims[same & other].mean()), float(sims[~same].mean())
    return within - cross, within, cross


class ContextualEmbeddings(LeedlTask):
    """The vectors of an ambiguous word in sentences of its senses, layer by layer; within vs cross-sense similarity."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 sentences: Provided[tuple[SenseSentence, ...]] = (), tokenizer: Provided[Any] = None,
                 plots: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.sentences, self.tokenizer, self.plots = tuple(sentences), tokenizer, plots
        self.vectors: dict[int, torch.Tensor] = {}    # sentence index -> [1 + L + 1, D]: control, layer 0..L
        self.pieces: dict[int, list[str]] = {}

    def _encoder(self):
        """The plain encoder inside the wrapper (BertModel for every head)."""
        hf = getattr(self.model, "hf", self.model)
        return getattr(hf, getattr(hf, "base_model_prefix", ""), hf)

    @torch.no_grad()
    def word_vectors(self, batch: list[SenseSentence]) -> tuple[torch.Tensor, list[list[int]]]:
        """[B, 1 + L + 1, D] (control, layer 0, ..., layer L) and each sentence's word-piece ids."""
        enc = self.tokenizer([s.sentence for s in batch], return_offsets_mapping=True, padding=True,
                             truncation=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").tolist()
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        encoder = self._encoder()
        hidden = torch.stack(encoder(**inputs, output_hidden_states=True).hidden_states, 1)   # [B, L+1, T, D]
        table = encoder.get_input_embeddings()
        out, ids = [], []
        for b, s in enumerate(batch):
            where = word_pieces(offsets[b], s.start, s.end)
            if not where:
                raise LeedlError(f"no token of sentence {s.index} covers {s.word!r} (truncated at "
                                 f"{self.tokenizer.model_max_length} tokens?): {s.sentence!r}")
            pos = torch.tensor(where, device=self.device)
            piece_ids = inputs["input_ids"][b, pos]
            control = table(piece_ids).mean(0, keepdim=True)                      # no position, no context
            out.append(torch.cat([control, hidden[b][:, pos].mean(1)]).float().cpu())
            ids.append(piece_ids.tolist())
        return torch.stack(out), ids

    def on_test_start(self) -> None:
        self.vectors, self.pieces = {}, {}

    def test_step(self, batch, batch_idx):
        vectors, ids = self.word_vectors(batch)
        for s, v, p in zip(batch, vectors, ids):
            self.vectors[s.index] = v
            self.pieces[s.index] = self.tokenizer.convert_ids_to_tokens(p)

    def on_test_epoch_end(self) -> None:
        seen = [s for s in self.sentences if s.index in self.vectors]
        if len(seen) < len(self.sentences):
            log.warning("contextual embeddings: %d of %d sentences were tested (trainer.limit_test_batches?); "
                        "the similarities use those only", len(seen), len(self.sentences))
        words = {}
        for word in dict.fromkeys(s.word for s in seen):
            group = [s for s in seen if s.word == word]
            senses = [s.sense for s in group]
            if len(set(senses)) < 2 or any(senses.count(x) < 2 for x in set(senses)):
                log.warning("word %r: fewer than two senses with two sentences each were tested; left out", word)
                continue
            words[word] = self._measure_word(group)
        if not words:
            raise LeedlError("no word had two senses with two tested sentences each: raise "
                             "trainer.limit_test_batches or task.data.batch_size")
        self._log_summary(words)
        if self.plots and self.run_dir is not None and self.trainer.is_global_zero:
            self._plot(words, seen)

    def _measure_word(self, group: list[SenseSentence]) -> dict:
        stacked = torch.stack([self.vectors[s.index] for s in group])               # [N, 1 + L + 1, D]
        senses = [s.sense for s in group]
        by_layer = [sense_gap(stacked[:, k], senses) for k in range(stacked.shape[1])]
        pieces = {tuple(self.pieces[s.index]) for s in group}
        if len(pieces) > 1:
            log.warning("word %r is split into different pieces in different sentences %s: its control vectors "
                        "differ", group[0].word, sorted(pieces))
        return {"pieces": list(min(pieces)), "same_pieces_everywhere": len(pieces) == 1,
                "senses": {x: senses.count(x) for x in dict.fromkeys(senses)},
                "sense_gap_control": by_layer[0][0], "sense_gap_by_layer": [g for g, _, _ in by_layer[1:]],
                "within_by_layer": [w for _, w, _ in by_layer[1:]], "cross_by_layer": [c for _, _, c in by_layer[1:]],
                "control_within": by_layer[0][1], "control_cross": by_layer[0][2]}

    def _log_summary(self, words: dict[str, dict]) -> None:
        layers = len(next(iter(words.values()))["sense_gap_by_layer"])   # L + 1 (layer 0 = embedding output)
        mean_by_layer = [statistics.fmean(w["sense_gap_by_layer"][k] for w in words.values()) for k in range(layers)]
        last = [w["sense_gap_by_layer"][-1] for w in words.values()]
        growth = [w["sense_gap_by_layer"][-1] - w["sense_gap_by_layer"][min(1, layers - 1)] for w in words.values()]
        metrics = {"sense_gap_control": statistics.fmean(w["sense_gap_control"] for w in words.values())}
        metrics.update({f"sense_gap_layer{k}": g for k, g in enumerate(mean_by_layer)})
        for name, values in (("sense_gap_last", last), ("sense_gap_growth", growth)):
            mean, std = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
            metrics.update({name: mean, f"{name}_std": std, f"{name}_min": min(values), f"{name}_low": mean - std})
        metrics.update({f"sense_gap_last_{word}": w["sense_gap_by_layer"][-1] for word, w in words.items()})
        metrics["within_sense_sim_last"] = statistics.fmean(w["within_by_layer"][-1] for w in words.values())
        metrics["cross_sense_sim_last"] = statistics.fmean(w["cross_by_layer"][-1] for w in words.values())
        for name, value in metrics.items():
            self.log(f"test/{name}", value)
        self.results["contextual_embeddings"] = {
            "layers": layers - 1, "sense_gap_control": metrics["sense_gap_control"],
            "sense_gap_by_layer": mean_by_layer, "words": words}
        log.info("sense gap (within - cross cosine similarity) by layer, mean over %d words: control %.4f | %s",
                 len(words), metrics["sense_gap_control"],
                 " ".join(f"L{k} {g:.4f}" for k, g in enumerate(mean_by_layer)))
        log.info("last-layer sense gap per word: %s", ", ".join(f"{w} {g:.4f}" for w, g in zip(words, last)))

    def _plot(self, words: dict[str, dict], seen: list[SenseSentence]) -> None:
        from leedl_cli.analysis.embedding_plots import plot_gap_vs_layer, plot_similarity_maps

        folder = self.plots_dir()
        for word in words:
            group = [s for s in seen if s.word == word]
            stacked = torch.stack([self.vectors[s.index] for s in group])
            last = stacked.shape[1] - 2
            plot_similarity_maps({"word-piece embedding (control)": cosine_matrix(stacked[:, 0]),
                                  f"layer {last} (last)": cosine_matrix(stacked[:, -1])},
                                 [s.sense for s in group], folder / f"similarity_{word}.png",
                                 title=f"'{word}': cosine similarity of its vectors in {len(group)} sentences")
        plot_gap_vs_layer({w: [v["sense_gap_control"]] + v["sense_gap_by_layer"] for w, v in words.items()},
                          folder / "sense_gap_vs_layer.png")
