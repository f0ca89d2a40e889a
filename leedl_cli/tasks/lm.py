"""Next-token prediction (GPT pretraining, ch. 5, section 5.3): `task=lm_pretrain model=gpt`.

Loss: the cross-entropy of every next token. Perplexity = exp(mean cross-entropy per token) on the validation
blocks at every validation (`val/ppl`; `trainer.val_check_interval` sets how often), drawn against the
training steps in `plots/perplexity.png` and listed in results.json (`val_ppl_curve`); `test/ppl` on the test
blocks at the end. After training, continuations of a few fixed prompts are generated with the chapter 4
decoding (`leedl_cli.decoding.generate`: greedy, top-k sampling, nucleus sampling) and saved in
`samples.txt`, with the distinct-2 diversity of each strategy in results.json.
From the data (`Provided`): the vocabulary's encode / decode and its [EOS] id (the samples' prompts and text).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Callable

import torch
import torch.nn.functional as F

from leedl_cli.atomic import write_text_atomic
from leedl_cli.contract import AtLeastOne, Provided
from leedl_cli.decoding import distinct_n, generate
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
SAMPLES_FILE = "samples.txt"
DEFAULT_PROMPTS = ("the", "the university", "in 1990 ,", "the first", "the city of")
DEFAULT_STRATEGIES = ({"name": "greedy", "strategy": "greedy"},
                      {"name": "top-k (k=40)", "strategy": "sampling", "top_k": 40},
                      {"name": "nucleus (p=0.9)", "strategy": "sampling", "top_p": 0.9})


class LanguageModelPretraining(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 encode: Provided[Callable[[str], list[int]] | None] = None,
                 decode: Provided[Callable[[list[int]], str] | None] = None, eos_id: Provided[int | None] = None,
                 prompts: list[str] | None = None, samples_per_prompt: Annotated[int, AtLeastOne] = 2,
                 max_new_tokens: Annotated[int, AtLeastOne] = 30, sample_seed: int = 0) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.encode, self.decode, self.eos_id = encode, decode, eos_id
        self.prompts = list(prompts) if prompts is not None else list(DEFAULT_PROMPTS)
        self.samples_per_prompt, self.max_new_tokens = int(samples_per_prompt), int(max_new_tokens)
        self.sample_seed = int(sample_seed)
        self.curve: list[dict] = []
        self._sums = {"val": [0.0, 0], "test": [0.0, 0]}

    def _loss(self, batch):
        logits = self.model(batch["input_ids"])
        labels = batch["labels"]
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                   ignore_index=-100, reduction="sum")
        return loss_sum, int((labels != -100).sum())

    def training_step(self, batch, batch_idx):
        loss_sum, n = self._loss(batch)
        loss = loss_sum / max(n, 1)
        if self.logs_this_step():
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        loss_sum, n = self._loss(batch)
        self._sums[stage][0] += float(loss_sum)
        self._sums[stage][1] += n

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._sums["val"] = [0.0, 0]

    def on_test_epoch_start(self) -> None:
        self._sums["test"] = [0.0, 0]

    def _epoch_end(self, stage: str) -> float:
        total, n = self._sums[stage]
        loss = total / max(n, 1)
        ppl = math.exp(min(loss, 50.0))
        self.log(f"{stage}/loss", loss)
        self.log(f"{stage}/ppl", ppl, prog_bar=True)
        return ppl

    def on_validation_epoch_end(self) -> None:
        ppl = self._epoch_end("val")
        if not self.trainer.sanity_checking:
            self.curve.append({"step": int(self.global_step), "val_ppl": ppl})

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def on_fit_end(self) -> None:
        self.results["val_ppl_curve"] = self.curve
        if self.run_dir is None or not self.trainer.is_global_zero or self.diverged:
            return
        if self.curve:
            self._plot()
        if self.encode is not None:
            self._samples()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([c["step"] for c in self.curve], [c["val_ppl"] for c in self.curve], marker="o")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation perplexity")
        ax.set_yscale("log")
        ax.set_title("GPT next-token prediction (ch. 5.3)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.plots_dir() / "perplexity.png", dpi=120)
        plt.close(fig)

    @torch.no_grad()
    def _samples(self) -> None:
        was = self.model.training
        self.model.eval()
        gen = torch.Generator().manual_seed(self.sample_seed)
        lines, diversity = [], {}
        for spec in DEFAULT_STRATEGIES:
            opts = {k: v for k, v in spec.items() if k != "name"}
            outs = []
            lines.append(f"== {spec['name']}")
            for prompt in self.prompts:
                ids = [self.eos_id] + self.encode(prompt)   # [EOS] ends the line before: a line starts here
                n = 1 if opts["strategy"] == "greedy" else self.samples_per_prompt
                prefix = torch.tensor([ids] * n, device=self.device)
                for cont in generate(self.model.next_token_logits, prefix, self.eos_id, self.max_new_tokens,
                                     generator=gen, **opts):
                    outs.append(cont)
                    lines.append(f"{prompt} || {self.decode(cont)}")
            diversity[spec["name"]] = {"distinct_1": distinct_n(outs, 1), "distinct_2": distinct_n(outs, 2)}
            lines.append("")
        path = write_text_atomic(self.run_dir / SAMPLES_FILE, "\n".join(lines))
        self.results["samples"] = str(path)
        self.results["sample_diversity"] = diversity
        self.model.train(was)
        log.info("samples of %d prompts (greedy, top-k, nucleus) written to %s", len(self.prompts), path)
