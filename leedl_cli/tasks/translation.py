"""Translation with an encoder-decoder (chapter 4, the Transformer): `task=translation`.

Training (section 4.7): teacher forcing — the decoder reads the reference shifted right ([BOS] y1 ... yn) and
learns to predict y1 ... yn [EOS] with label-smoothed cross-entropy (`label_smoothing`, 0.1 as in the
Transformer paper). Options of section 4.8:
- scheduled sampling (4.8.6, `scheduled_sampling: none | linear | inverse_sigmoid | exponential`): with a
  probability p that rises over training from 0 to `scheduled_sampling_max`, a decoder input token is replaced by
  the model's own prediction. Two passes per batch: first the greedy predictions under teacher forcing (no
  gradient), then the training pass on the mixed inputs. With x = update / all updates in [0, 1]:
  linear p = max x; inverse_sigmoid p = max (1 - 1 / (1 + exp(10 (x - 0.5)))); exponential p = max (1 - 0.01^x).
- guided attention (4.8.2, `guided_attention: <weight>`): a diagonal prior on cross-attention, the loss
  mean_{t,s} alpha_{t,s} (1 - exp(-(s/S - t/T)^2 / (2 sigma^2))) (Tachibana et al. 2018), averaged over layers
  and heads, added with that weight.
- the copy mechanism (4.8.1) is a model option (`model.copy=true`), see models/seq2seq.py.
- training for BLEU (4.8.5, `objective: cross_entropy | self_critical`): self-critical sequence training from a
  trained model (`weights_from`), mixed with cross-entropy by `rl_weight` (leedl_cli.tasks.translation_rl).
`model=nat_transformer` (4.5.2) trains with its own objective: leedl_cli.tasks.translation_nat.

Validation: loss under teacher forcing and corpus BLEU of greedy translations (`val/bleu`, the monitor: the best
checkpoint is the one with the best validation BLEU; `val_bleu_sentences: N` scores the first N validation pairs
only, as decoding costs more than the loss). Test: the weights run.py tests (`task.test_weights`, by default the
best validation-BLEU checkpoint), decoded with `decode: greedy | beam | sampling` (`beam_size`,
`length_penalty`, `temperature`, `top_k`, `top_p`; at most `max_len_a` * source length + `max_len_b` pieces per
sentence; leedl_cli.decoding), scored with sacreBLEU on detokenised text (cased; tokenizer `13a`, `zh` for a
Chinese target) and chrF, plus distinct-1/2 (diversity), the mean hypothesis length and `test/repeat_rate`
(consecutive equal pieces). `speed_sentences: N` times the decoding of the first N test sentences, one at a time
and 64 at a time (`test/sent_per_s_b1`, `test/sent_per_s_b64`). `predictions_test.txt`
(one hypothesis per line, in test-file order) and `references_test.txt` go beside results.json so anyone can
re-score them; plots/ gets the cross-attention of one test sentence for every layer (one panel per head) and
`bleu_vs_time.png`, validation BLEU against the wall time of fitting (also `val_bleu_curve` in results.json).

The run writes `translation_model.json` and its vocabularies (leedl_cli.translate): `leedl translate RUN`
rebuilds the model and decodes new sentences exactly as the test did. `weights_from: <run dir or .ckpt>` starts
from trained weights (with `task.fit=false`: test a trained model with other decoding options).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Annotated, Callable, Literal, get_args

import torch
import torch.nn.functional as F

from leedl_cli.analysis.translation_plots import plot_bleu_curve, plot_cross_attention
from leedl_cli.checkpoints import load_model_weights
from leedl_cli.contract import AtLeastOne, NonNegative, Positive, Probability, Provided, Range
from leedl_cli.data.tokenizers import Vocabulary
from leedl_cli.decoding import (
    BeamSize,
    Decode,
    DecodeSettings,
    LengthPenalty,
    MaxLenA,
    MaxLenB,
    Temperature,
    TopK,
    TopP,
    decode_sources,
    distinct_n,
)
from leedl_cli.errors import LeedlError
from leedl_cli.nat_decoding import repeat_rate, sentences_per_second
from leedl_cli.tasks.base import LeedlTask
from leedl_cli.tasks.translation_rl import RLBaseline

log = logging.getLogger(__name__)
Schedule = Literal["none", "linear", "inverse_sigmoid", "exponential"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
Objective = Literal["cross_entropy", "self_critical"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
SPEED_BATCH_SIZES = (1, 64)        # test/sent_per_s_b1, test/sent_per_s_b64
ATTENTION_PLOT_LENGTHS = (8, 16)   # the attention plot's sentence: the first test source of 8-16 pieces


def sampling_probability(schedule: Schedule, progress: float, maximum: float) -> float:
    """p(feed the model's own prediction) at `progress` in [0, 1] of training."""
    x = min(1.0, max(0.0, progress))
    if schedule == "none":
        return 0.0
    if schedule == "linear":
        return maximum * x
    if schedule == "inverse_sigmoid":
        return maximum * (1.0 - 1.0 / (1.0 + math.exp(10.0 * (x - 0.5))))
    if schedule == "exponential":
        return maximum * (1.0 - 0.01 ** x)
    raise LeedlError(f"scheduled_sampling={schedule!r}: expected one of {', '.join(SCHEDULES)}")


def guided_attention_loss(weights: list, tgt_mask: torch.Tensor, src_mask: torch.Tensor, sigma: float = 0.2):
    """Diagonal prior: attention far from s/S = t/T costs. weights: [B, H, T, S] per layer; masks True = real."""
    t_len = tgt_mask.sum(1, keepdim=True).clamp_min(1).float()          # [B, 1]
    s_len = src_mask.sum(1, keepdim=True).clamp_min(1).float()
    t = torch.arange(tgt_mask.shape[1], device=tgt_mask.device).float().unsqueeze(0) / t_len   # [B, T]
    s = torch.arange(src_mask.shape[1], device=src_mask.device).float().unsqueeze(0) / s_len   # [B, S]
    penalty = 1.0 - torch.exp(-((s.unsqueeze(1) - t.unsqueeze(2)) ** 2) / (2 * sigma ** 2))  # [B, T, S]
    valid = (tgt_mask.unsqueeze(2) & src_mask.unsqueeze(1)).float()
    losses = [((w.mean(1) * penalty * valid).sum() / tgt_mask.sum().clamp_min(1)) for w in weights if w is not None]
    return torch.stack(losses).mean()


def corpus_scores(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> dict:
    """sacreBLEU corpus BLEU (cased) and chrF of detokenised text."""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize)
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"bleu": float(bleu.score), "chrf": float(chrf.score), "signature": f"tok:{tokenize}|{bleu.format()}"}


class Translation(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 pad_token_id: Provided[int] = 0, src_vocab: Provided[Vocabulary | None] = None,
                 tgt_vocab: Provided[Vocabulary | None] = None, bleu_tokenize: Provided[str] = "13a",
                 references: Provided[Callable[[str], list[str]] | None] = None,
                 max_length: Provided[int] = 128, eval_batch_size: Provided[int] = 200,
                 label_smoothing: Annotated[float, Range(0, 1, high_open=True)] = 0.1,
                 scheduled_sampling: Schedule = "none", scheduled_sampling_max: Annotated[float, Probability] = 0.25,
                 guided_attention: Annotated[float, NonNegative] = 0.0,
                 guided_attention_sigma: Annotated[float, Positive] = 0.2,
                 decode: Decode = "greedy", beam_size: BeamSize = 5, length_penalty: LengthPenalty = 1.0,
                 temperature: Temperature = 1.0, top_k: TopK = 0, top_p: TopP = 1.0, max_len_a: MaxLenA = 1.5,
                 max_len_b: MaxLenB = 10, decode_seed: int = 0, val_bleu: bool = True,
                 val_bleu_sentences: Annotated[int, AtLeastOne] | None = None, attention_plot: bool = True,
                 weights_from: str | None = None, objective: Objective = "cross_entropy",
                 rl_weight: Annotated[float, Probability] = 0.9, rl_baseline: RLBaseline = "greedy",
                 rl_samples: Annotated[int, AtLeastOne] = 1,
                 speed_sentences: Annotated[int, NonNegative] = 0) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.pad, self.src_vocab, self.tgt_vocab = int(pad_token_id), src_vocab, tgt_vocab
        self.bleu_tokenize, self.references = bleu_tokenize, references
        self.max_length, self.eval_batch_size = int(max_length), int(eval_batch_size)
        self.label_smoothing = float(label_smoothing)
        self.scheduled_sampling, self.ss_max = scheduled_sampling, float(scheduled_sampling_max)
        self.guided_attention, self.guided_sigma = float(guided_attention), float(guided_attention_sigma)
        self.decoding = DecodeSettings(strategy=decode, beam_size=int(beam_size), length_penalty=float(length_penalty),
                                       temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                       max_len_a=float(max_len_a), max_len_b=int(max_len_b), seed=int(decode_seed))
        self.val_bleu, self.attention_plot, self.weights_from = bool(val_bleu), bool(attention_plot), weights_from
        self.val_bleu_sentences = None if val_bleu_sentences is None else int(val_bleu_sentences)
        self.objective, self.rl_weight, self.speed_sentences = objective, float(rl_weight), int(speed_sentences)
        self.rl_baseline, self.rl_samples = rl_baseline, int(rl_samples)
        self._train_references: list[str] | None = None
        self._eval: dict[str, dict] = {}
        self._train_tokens = 0
        self._loaded_from: str | None = None
        self._spec_written = False
        # validation BLEU against training wall time: one point per validation pass, kept in checkpoints so a
        # resumed run continues the curve and the clock
        self.bleu_curve: list[dict] = []
        self._clock_offset = 0.0
        self._clock_start: float | None = None

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """Self-critical training starts from a trained model; the leave-one-out baseline needs 2+ samples."""
        if options.get("objective") == "self_critical" and not options.get("weights_from"):
            return ["objective=self_critical: expected task.module.weights_from=<a trained task=translation run "
                    "directory or .ckpt> (from random weights sampled and greedy translations both score ~0 BLEU)"]
        if options.get("rl_baseline") == "mean" and int(options.get("rl_samples") or 1) < 2:
            return [f"rl_samples={options.get('rl_samples')}: rl_baseline=mean needs at least 2 samples a source"]
        return []

    # ---- set-up ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.weights_from and self._loaded_from is None:
            path = load_model_weights(self.model, self.weights_from)
            self._loaded_from = str(path)
            self.results["weights_from"] = str(path)
        if not self._spec_written and self.run_dir is not None and self.trainer.is_global_zero:
            self.write_spec()

    def write_spec(self) -> Path:
        """translation_model.json and the vocabularies: what `leedl translate` rebuilds the model from."""
        from leedl_cli.translate import write_spec

        self._spec_written = True
        return write_spec(self.run_dir, self.model, self.src_vocab, self.tgt_vocab, self.decoding, self.max_length,
                          self.eval_batch_size, self._loaded_from, self.spec_nat())

    def spec_nat(self) -> dict | None:
        """The non-autoregressive decoding the spec records (None: this task decodes autoregressively)."""
        return None

    # ---- training ----------------------------------------------------------------------------
    def progress(self) -> float:
        if self._trainer is None:
            return 1.0
        return self.global_step / max(1, self.num_updates())

    def decoder_inputs(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Teacher forcing, or (scheduled sampling) some inputs replaced by the model's own greedy predictions."""
        p = sampling_probability(self.scheduled_sampling, self.progress(), self.ss_max)
        if p <= 0.0:
            return tgt_in, 0.0
        with torch.no_grad():
            scores, _ = self.model(src, tgt_in)
            predicted = scores.argmax(-1)                        # predicted[:, t] is the guess for position t + 1
        mixed = tgt_in.clone()
        replace = torch.rand(tgt_in[:, 1:].shape, device=tgt_in.device) < p
        replace &= tgt_in[:, 1:] != self.pad
        mixed[:, 1:] = torch.where(replace, predicted[:, :-1], tgt_in[:, 1:])
        return mixed, p

    def loss(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        src, tgt = batch["src_ids"], batch["tgt_ids"]
        tgt_in, labels = tgt[:, :-1], tgt[:, 1:].masked_fill(tgt[:, 1:] == self.pad, -100)
        p = 0.0
        if stage == "train":
            tgt_in, p = self.decoder_inputs(src, tgt_in)
        guided = stage == "train" and self.guided_attention > 0
        scores, weights = self.model(src, tgt_in, need_weights=guided)
        n = int((labels != -100).sum())
        ce = F.cross_entropy(scores.reshape(-1, scores.shape[-1]).float(), labels.reshape(-1), ignore_index=-100,
                             label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        loss = ce
        if stage == "train" and self.objective == "self_critical":
            loss = self.rl_weight * self.self_critical(batch) + (1.0 - self.rl_weight) * ce
        if guided:
            ga = guided_attention_loss(weights, labels != -100, src != self.pad, self.guided_sigma)
            loss = loss + self.guided_attention * ga
            if self.logs_this_step():
                self.log("train/guided_attention", ga.detach(), on_step=True, on_epoch=False)
        if stage == "train" and self.logs_this_step():
            self.log("train/loss_step", ce.detach(), on_step=True, on_epoch=False, prog_bar=True)
            if self.scheduled_sampling != "none":
                self.log("train/sampling_probability", p, on_step=True, on_epoch=False)
        return loss, ce, n

    def self_critical(self, batch) -> torch.Tensor:
        """L_RL of a training batch (leedl_cli.tasks.translation_rl); logs reward, baseline and sample BLEU."""
        from leedl_cli.tasks.translation_rl import batch_loss

        return batch_loss(self, batch)

    def training_step(self, batch, batch_idx):
        loss, _, n = self.loss(batch, "train")
        self._train_tokens += n
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/tokens", float(self._train_tokens))
        self._train_tokens = 0

    # ---- validation and test -----------------------------------------------------------------
    def translate_ids(self, src: torch.Tensor, settings: DecodeSettings | None = None) -> list[list[int]]:
        """Target token ids (no [BOS]/[EOS]) for a padded source batch, with the test's decoding settings."""
        return decode_sources(self.model, src, self.pad, self.tgt_vocab.bos_token_id, self.tgt_vocab.eos_token_id,
                              settings or self.decoding)

    def _eval_step(self, batch, stage: str) -> None:
        _, ce, n = self.loss(batch, stage)
        store = self._eval.setdefault(stage, {"loss": 0.0, "n": 0, "hyps": {}})
        store["loss"] += float(ce) * n
        store["n"] += n
        if stage == "test" and self.attention_plot:
            self._remember_plot_sentence(batch)
        if stage == "test" and self.speed_sentences:
            timed = store.setdefault("speed_sources", {})
            for fi, row in zip(batch["feature_index"].tolist(), batch["src_ids"].tolist()):
                if fi < self.speed_sentences:
                    timed[fi] = [i for i in row if i != self.pad]
        if stage == "test" or self.val_bleu:
            settings = self.decoding if stage == "test" else self.decoding.replace(strategy="greedy")
            index, src = batch["feature_index"], batch["src_ids"]
            if stage == "val" and self.val_bleu_sentences is not None:   # BLEU on the first N validation pairs
                keep = index < self.val_bleu_sentences
                index, src = index[keep], src[keep]
                if not len(index):
                    return
                src = src[:, : int((src != self.pad).sum(1).max())]
            for fi, ids in zip(index.tolist(), self.translate_ids(src, settings)):
                store["hyps"][fi] = ids

    def _remember_plot_sentence(self, batch) -> None:
        """The attention plot's sentence: the first test source (by file order) of 8-16 pieces, else the first."""
        lo, hi = ATTENTION_PLOT_LENGTHS
        lengths = (batch["src_ids"] != self.pad).sum(1).tolist()
        best = self._eval["test"].get("plot")
        for row, (fi, n) in enumerate(zip(batch["feature_index"].tolist(), lengths)):
            rank = (0 if lo <= n <= hi else 1, fi)
            if fi == 0 or lo <= n <= hi:
                if best is None or rank < best[0]:
                    best = (rank, fi, batch["src_ids"][row, :n].tolist())
        self._eval["test"]["plot"] = best

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _finish(self, stage: str) -> dict | None:
        store = self._eval.pop(stage, None)
        if not store or not store["n"]:
            return None
        self.log(f"{stage}/loss", store["loss"] / store["n"], prog_bar=True)
        self.log(f"{stage}/ppl", math.exp(min(50.0, store["loss"] / store["n"])))
        if not store["hyps"]:
            return store
        order = sorted(store["hyps"])
        hyps = [self.tgt_vocab.decode(store["hyps"][i]) for i in order]
        references = self.references(stage)
        refs = [references[i] for i in order]
        scores = corpus_scores(hyps, refs, self.bleu_tokenize)
        self.log(f"{stage}/bleu", scores["bleu"], prog_bar=True)
        self.log(f"{stage}/chrf", scores["chrf"])
        store.update(hyps_text=hyps, refs=refs, order=order, scores=scores)
        return store

    def on_train_start(self) -> None:
        self._clock_start = time.perf_counter()

    def elapsed_s(self) -> float:
        """Seconds of fitting so far (training and validation passes; earlier sessions of a resumed run count)."""
        now = 0.0 if self._clock_start is None else time.perf_counter() - self._clock_start
        return self._clock_offset + now

    def on_validation_epoch_end(self) -> None:
        store = self._finish("val")
        if self.trainer.sanity_checking or not store or "scores" not in store:
            return
        self.bleu_curve.append({"epoch": int(self.current_epoch), "step": int(self.global_step),
                                "minutes": round(self.elapsed_s() / 60, 3), "val_bleu": store["scores"]["bleu"]})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["leedl_bleu_curve"] = {"points": list(self.bleu_curve), "elapsed_s": self.elapsed_s()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("leedl_bleu_curve")
        if saved:
            self.bleu_curve, self._clock_offset = list(saved["points"]), float(saved["elapsed_s"])

    def on_fit_end(self) -> None:
        if not self.bleu_curve:
            return
        self.results["val_bleu_curve"] = list(self.bleu_curve)
        self.results["best_val_bleu"] = max(c["val_bleu"] for c in self.bleu_curve)
        if self.run_dir is not None and self.trainer.is_global_zero:
            self.results["bleu_plot"] = str(plot_bleu_curve(self.bleu_curve, self.plots_dir() / "bleu_vs_time.png"))

    # ---- test --------------------------------------------------------------------------------
    def on_test_epoch_end(self) -> None:
        store = self._finish("test")
        if store is None or "hyps_text" not in store:
            return
        seqs = [store["hyps"][i] for i in store["order"]]
        self.log("test/distinct_1", distinct_n(seqs, 1))
        self.log("test/distinct_2", distinct_n(seqs, 2))
        self.log("test/length", sum(len(s) for s in seqs) / max(1, len(seqs)))
        self.log("test/repeat_rate", repeat_rate(seqs))
        self.results["decode"] = self.decoding.as_dict()
        self.test_extras(store, seqs)
        self.results["bleu_signature"] = store["scores"]["signature"]
        self.results["test_sentences"] = len(seqs)
        if self.run_dir is not None and self.trainer.is_global_zero:
            from leedl_cli.atomic import write_text_atomic

            write_text_atomic(self.run_dir / "predictions_test.txt",
                              "".join(h.replace("\n", " ") + "\n" for h in store["hyps_text"]))
            write_text_atomic(self.run_dir / "references_test.txt", "".join(r + "\n" for r in store["refs"]))
            self.results["predictions"] = str(self.run_dir / "predictions_test.txt")
            if self.attention_plot and store.get("plot") is not None:
                self._draw_cross_attention(*store["plot"][1:])

    def test_extras(self, store: dict, seqs: list[list[int]]) -> None:
        """Decoding speed on the first `speed_sentences` test sentences (in test-file order)."""
        timed = store.get("speed_sources") or {}
        sources = [timed[i] for i in sorted(timed)]
        if sources:
            for size in SPEED_BATCH_SIZES:
                self.log(f"test/sent_per_s_b{size}",
                         sentences_per_second(self.translate_ids, sources, size, self.pad, self.device))
            self.results["speed_sentences"] = len(sources)

    def _draw_cross_attention(self, index: int, src_ids: list[int]) -> None:
        src = torch.tensor([src_ids], device=self.device)
        hyp = self.translate_ids(src, self.decoding.replace(strategy="greedy"))[0]
        bos, eos = self.tgt_vocab.bos_token_id, self.tgt_vocab.eos_token_id
        weights = self.model.cross_attention(src, torch.tensor([[bos] + hyp], device=self.device))
        src_words = [self.src_vocab.id_to_token(i) for i in src_ids]
        tgt_words = [self.tgt_vocab.id_to_token(i) for i in hyp + [eos]]
        self.results["attention_plots"] = [
            str(plot_cross_attention(w[0], src_words, tgt_words, self.plots_dir() / f"cross_attention_layer{k + 1}.png",
                                     f"decoder layer {k + 1}: cross-attention (test sentence {index})"))
            for k, w in enumerate(weights) if w is not None]
