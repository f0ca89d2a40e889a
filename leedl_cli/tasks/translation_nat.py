"""Non-autoregressive translation (ch. 4, section 4.5.2): `task=translation model=nat_transformer`.

The autoregressive decoder writes one token after another; a non-autoregressive one (Gu et al. 2018) writes the
whole sentence in one pass: a classifier over the encoder's output picks the length, then every position is
predicted at once (leedl_cli.models.nat). Parallel and fast, but each position is chosen without knowing the
others' choices, so a sentence can mix two translations (repeated or missing words: `test/repeat_rate`). The
tricks that narrow the gap to autoregressive quality, as options:

- sequence-level knowledge distillation (Kim & Rush 2016): train on an autoregressive model's beam outputs
  instead of the references (`task.data.distill_from=<run dir>`, leedl_cli.data.distillation);
- mask-predict (Ghazvininejad et al. 2019): `nat_iterations: K` refinement passes (leedl_cli.nat_decoding),
  trained with the conditional masked-LM objective.

Training (`nat_objective`): the target pieces (no [BOS]/[EOS]) at their true length; `one_pass` masks every
position and scores them all; `cmlm` masks n ~ Uniform{1 .. length} random positions of each sentence and scores
only those; `auto` = `cmlm` when `nat_iterations` > 1, else `one_pass`. The length classifier adds
`length_loss_weight` x its cross-entropy (`train/length_loss`). Validation: the loss with every position masked
and BLEU of the test's decoding. Test: what every translation test measures (BLEU, chrF, repeat rate, speed with
`speed_sentences`, predictions_test.txt) plus `test/length_acc`, the share of test sentences whose predicted
length is the reference's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

import torch
import torch.nn.functional as F

from leedl_cli.contract import AtLeastOne, NonNegative
from leedl_cli.decoding import DecodeSettings
from leedl_cli.nat_decoding import decode_nat
from leedl_cli.tasks.translation import Translation

NATObjective = Literal["auto", "one_pass", "cmlm"]
NAT_OBJECTIVES: tuple[str, ...] = get_args(NATObjective)


def cmlm_mask(lengths: torch.Tensor, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, width] True at n ~ Uniform{1 .. length} random positions of each sentence (none past its length)."""
    real = torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
    draws = torch.rand(lengths.shape[0], width + 1, generator=generator).to(lengths.device)
    n = (draws[:, 0] * lengths.float()).floor().long() + 1
    rank = draws[:, 1:].masked_fill(~real, 2.0).argsort(1).argsort(1)
    return (rank < n.unsqueeze(1)) & real


class NATTranslation(Translation):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 nat_iterations: Annotated[int, AtLeastOne] = 1, nat_objective: NATObjective = "auto",
                 length_loss_weight: Annotated[float, NonNegative] = 0.1, **options) -> None:
        options.setdefault("attention_plot", False)
        super().__init__(model, optimizer, scheduler, run_dir=run_dir, **options)
        self.iterations, self.length_loss_weight = int(nat_iterations), float(length_loss_weight)
        if nat_objective == "auto":
            nat_objective = "cmlm" if self.iterations > 1 else "one_pass"
        self.nat_objective = nat_objective
        self._true_lengths: dict[int, int] = {}

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The autoregressive decoder's options have no meaning here."""
        problems = []
        if options.get("objective", "cross_entropy") != "cross_entropy":
            problems.append(f"objective={options['objective']}: model=nat_transformer trains with cross_entropy "
                            f"(self-critical training samples token by token: use model=transformer)")
        if options.get("scheduled_sampling", "none") != "none":
            problems.append(f"scheduled_sampling={options['scheduled_sampling']}: expected none with "
                            f"model=nat_transformer (its decoder reads no previous outputs)")
        if options.get("guided_attention", 0.0):
            problems.append(f"guided_attention={options['guided_attention']}: expected 0 with model=nat_transformer")
        if options.get("attention_plot"):
            problems.append("attention_plot=true: expected false with model=nat_transformer (the plot follows an "
                            "autoregressive decode)")
        return problems

    def targets(self, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """([BOS] y [EOS] padded) -> (the pieces y [B, T] padded, their lengths [B])."""
        pieces = tgt[:, 1:].masked_fill(tgt[:, 1:] == self.tgt_vocab.eos_token_id, self.pad)
        lengths = (pieces != self.pad).sum(1)
        return pieces[:, : max(1, int(lengths.max()))], lengths

    def loss(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        src, (targets, lengths) = batch["src_ids"], self.targets(batch["tgt_ids"])
        real = torch.arange(targets.shape[1], device=src.device).unsqueeze(0) < lengths.unsqueeze(1)
        masked = cmlm_mask(lengths, targets.shape[1]) if stage == "train" and self.nat_objective == "cmlm" else real
        logits, length_logits = self.model(src, targets, masked, lengths)
        labels = targets.masked_fill(~masked, -100)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100,
                             label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        length_ce = F.cross_entropy(length_logits.float(), lengths.clamp(max=self.model.max_target_length))
        if stage == "train" and self.logs_this_step():
            self.log("train/loss_step", ce.detach(), on_step=True, on_epoch=False, prog_bar=True)
            self.log("train/length_loss", length_ce.detach(), on_step=True, on_epoch=False)
        elif stage != "train":
            self.log(f"{stage}/length_loss", length_ce.detach(), batch_size=len(lengths))
        return ce + self.length_loss_weight * length_ce, ce, int(masked.sum())

    def spec_nat(self) -> dict | None:
        return {"iterations": self.iterations}

    def translate_ids(self, src: torch.Tensor, settings: DecodeSettings | None = None) -> list[list[int]]:
        """Target ids for a padded source batch: the predicted length, `nat_iterations` passes (no search)."""
        v = self.tgt_vocab
        return decode_nat(self.model, src, self.pad, self.iterations,
                          banned=(self.pad, v.bos_token_id, v.eos_token_id, v.mask_token_id))

    def _eval_step(self, batch, stage: str) -> None:
        super()._eval_step(batch, stage)
        if stage == "test":
            _, lengths = self.targets(batch["tgt_ids"])
            self._true_lengths.update(zip(batch["feature_index"].tolist(), lengths.tolist()))

    def test_extras(self, store: dict, seqs: list[list[int]]) -> None:
        super().test_extras(store, seqs)
        hits = [len(s) == self._true_lengths[i] for i, s in zip(store["order"], seqs)]
        self.log("test/length_acc", sum(hits) / max(1, len(hits)))
        self.results["decode"] = {"strategy": "mask_predict" if self.iterations > 1 else "one_pass",
                                  "iterations": self.iterations, "objective": self.nat_objective}
