"""Open-ended text completion (ch. 4, sections 4.8.3-4.8.4): `task=text_completion`, no training (`fit: false`).

A decoder-only language model continues N prompts (leedl_cli.data.completion_prompts: the first sentence of SQuAD
dev paragraphs, or the first half of SST-2 dev sentences) by exactly `max_new_tokens` new tokens, decoded with
`decode: greedy | beam | sampling` (`beam_size`; sampling's `temperature`, `top_k`, `top_p`: pure sampling,
top-k, nucleus; leedl_cli.decoding, the module translation decodes with). The book's point (Holtzman et al. 2020,
"The Curious Case of Neural Text Degeneration"): where there is no one right answer, the most probable text is
not human-like text; beam search and greedy decoding loop ("... of the University of the University of ..."),
a little randomness gives text that looks normal.

Measured in words (lower-cased words and punctuation, `leedl_cli.analysis.text_metrics`), for the continuations
and for the human continuations (the text that followed each prompt, cut to the same number of model tokens):
- `test/repetition_<n>`: the share of a continuation's n-grams (n = `ngram`, 4) that repeat an earlier one,
  averaged over continuations; `test/human_repetition_<n>` the same of the human text and
  `test/repetition_<n>_above_human` the difference;
- `test/distinct_1`, `test/distinct_2`: distinct n-grams / all n-grams across all continuations (and `human_`);
- `test/ppl`: the model's own perplexity of its continuations given their prompts (beam search makes it low);
  `test/human_ppl` of the human continuations (the reference);
- `test/tokens_per_s`: new tokens generated per second of decoding.

Models: `model=causal_lm` (SmolLM2-135M, its own tokenizer, decoded with a key/value cache, prompts batched with
left padding), or `model=gpt` (leedl's own GPT: `weights_from=<a task=lm_pretrain run>` and
`task.data.lm_corpus=<its corpus>`; one prompt at a time). `continuations.jsonl` (one object per prompt: prompt,
continuation, human continuation, the token counts) goes to the run directory.
From the data (`Provided`, used with `model=gpt` only): the vocabulary's text -> ids, ids -> text and [EOS] id.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Callable

import torch
import torch.nn.functional as F

from leedl_cli.analysis.text_metrics import distinct_n, mean_repetition, perplexity, words
from leedl_cli.atomic import write_text_atomic
from leedl_cli.contract import AtLeastOne, Provided
from leedl_cli.decoding import (
    BeamSize,
    Decode,
    DecodeSettings,
    LengthPenalty,
    Temperature,
    TopK,
    TopP,
    decode_prompts,
    generate,
)
from leedl_cli.errors import LeedlError
from leedl_cli.models.causal_lm import CausalLM
from leedl_cli.tasks.base import LeedlTask
from leedl_cli.tasks.few_shot import encode, start_ids

log = logging.getLogger(__name__)
CONTINUATIONS_FILE = "continuations.jsonl"
SCALED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling")   # models whose head is more than a matrix


class TextCompletion(LeedlTask):
    """Continue prompts with a causal LM; repetition, diversity and perplexity against the human continuations."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 to_ids: Provided[Callable[[str], list[int]] | None] = None,
                 to_text: Provided[Callable[[list[int]], str] | None] = None, eos_id: Provided[int | None] = None,
                 decode: Decode = "greedy", beam_size: BeamSize = 5, length_penalty: LengthPenalty = 1.0,
                 temperature: Temperature = 1.0, top_k: TopK = 0, top_p: TopP = 1.0, decode_seed: int = 0,
                 max_new_tokens: Annotated[int, AtLeastOne] = 40, ngram: Annotated[int, AtLeastOne] = 4,
                 weights_from: str | None = None, save_continuations: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.to_ids, self.to_text, self.eos_id = to_ids, to_text, eos_id
        self.decoding = DecodeSettings(strategy=decode, beam_size=int(beam_size), length_penalty=float(length_penalty),
                                       temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                       seed=int(decode_seed))
        self.max_new_tokens, self.ngram = int(max_new_tokens), int(ngram)
        self.weights_from, self.save_continuations = weights_from, bool(save_continuations)
        self.hf_model = isinstance(model, CausalLM)
        self._loaded_from: str | None = None
        self.rows: list[dict] = []
        self.decode_s = 0.0

    def setup(self, stage: str) -> None:
        if self.hf_model and self.weights_from:
            raise LeedlError(f"task.module.weights_from={self.weights_from}: model=causal_lm is used as shipped; "
                             f"weights_from is for model=gpt (a task=lm_pretrain run)")
        if not self.hf_model and self.to_ids is None:
            raise LeedlError("model=gpt reads text through the vocabulary of its task=lm_pretrain run: set "
                             "task.data.lm_corpus (and lm_vocab_kind / lm_vocab_size / lm_block_size) as in that run")
        if self.weights_from and self._loaded_from is None:
            from leedl_cli.checkpoints import load_model_weights

            self._loaded_from = str(load_model_weights(self.model, self.weights_from))
            self.results["weights_from"] = self._loaded_from

    # ---- the model seen through text ------------------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        if self.hf_model:
            return start_ids(self.model.tokenizer) + encode(self.model.tokenizer, text)
        return [self.eos_id] + self.to_ids(text)   # [EOS] ends the line before: a line starts here

    def text_ids(self, text: str) -> list[int]:
        """The ids of text that follows a prompt (a leading space: a new word)."""
        return encode(self.model.tokenizer, " " + text) if self.hf_model else self.to_ids(text)

    def to_string(self, ids: list[int]) -> str:
        if self.hf_model:
            return self.model.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return self.to_text(ids)

    def continue_prompts(self, prompts: list[list[int]]) -> list[list[int]]:
        if self.hf_model:
            tok = self.model.tokenizer
            eos = tok.eos_token_id if tok.eos_token_id is not None else 0
            pad = tok.pad_token_id if tok.pad_token_id is not None else eos
            return decode_prompts(self.model.hf, prompts, self.decoding, self.max_new_tokens, eos, pad)
        out = []
        for p in prompts:   # leedl's GPT has no cache and counts positions from 0: one prompt at a time
            gen = [self.decoding.generator_for(p)] if self.decoding.strategy == "sampling" else None
            out += generate(self.model.next_token_logits, torch.tensor([p], device=self.device), self.eos_id,
                            self.max_new_tokens, min_new_tokens=self.max_new_tokens, generator=gen,
                            **self.decoding.search_options())
        return out

    @torch.no_grad()
    def negative_log_likelihoods(self, prompts: list[list[int]], texts: list[list[int]]) -> list[float]:
        """-sum log p(text | prompt) of each (prompt, text) pair, in one right-padded forward pass."""
        seqs = [p + t for p, t in zip(prompts, texts)]
        if not self.hf_model:   # the GPT reads at most block_size tokens: the newest ones
            cut = [max(0, len(s) - self.model.block_size) for s in seqs]
            seqs, prompts = [s[c:] for s, c in zip(seqs, cut)], [p[c:] for p, c in zip(prompts, cut)]
        longest = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), longest, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), True
        rows = torch.tensor([i for i, t in enumerate(texts) for _ in t], device=self.device)
        # the logits at position j predict token j + 1: a text's tokens are read at len(prompt) - 1, ...
        cols = torch.tensor([len(p) - 1 + j for p, t in zip(prompts, texts) for j in range(len(t))], device=self.device)
        targets = torch.tensor([tok for t in texts for tok in t], device=self.device)
        hf = self.model.hf if self.hf_model else None
        if hf is not None and not any(getattr(hf.config, a, None) for a in SCALED_LOGITS):
            # the output layer (a fifth of SmolLM2's work per token) only where a text token is read
            hidden = hf.base_model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
            logits = hf.get_output_embeddings()(hidden[rows, cols])
        elif hf is not None:
            logits = hf(input_ids=ids, attention_mask=mask.long()).logits[rows, cols]
        else:
            logits = self.model(ids, padding_mask=~mask)[rows, cols]
        nll = -F.log_softmax(logits.float(), -1).gather(1, targets[:, None]).squeeze(1)
        return torch.zeros(len(texts), device=self.device).index_add_(0, rows, nll).tolist()

    # ---- the test pass -----------------------------------------------------------------------------
    def on_test_start(self) -> None:
        self.rows, self.decode_s = [], 0.0
        log.info("text completion: %s, %d new tokens per prompt", self.decoding.search_options(), self.max_new_tokens)

    def test_step(self, batch, batch_idx):
        prompts = [self.prompt_ids(p) for p in batch["prompt"]]
        start = time.perf_counter()
        conts = self.continue_prompts(prompts)
        self.decode_s += time.perf_counter() - start
        humans = [self.text_ids(c)[: self.max_new_tokens] for c in batch["continuation"]]
        nll = self.negative_log_likelihoods(prompts, conts)
        human_nll = self.negative_log_likelihoods(prompts, humans)
        for i, index in enumerate(batch["index"]):
            self.rows.append({"index": int(index), "prompt": batch["prompt"][i], "continuation": self.to_string(conts[i]),
                              "human": self.to_string(humans[i]), "tokens": len(conts[i]),
                              "human_tokens": len(humans[i]), "nll": round(nll[i], 4), "human_nll": round(human_nll[i], 4)})

    def measures(self) -> dict[str, float]:
        """The test metrics (without the `test/` prefix) of the continuations gathered so far."""
        n, out = self.ngram, {}
        for prefix, text, nll, tokens in (("", "continuation", "nll", "tokens"),
                                          ("human_", "human", "human_nll", "human_tokens")):
            seqs = [words(r[text]) for r in self.rows]
            out[f"{prefix}repetition_{n}"] = mean_repetition(seqs, n)
            out[f"{prefix}distinct_1"] = distinct_n(seqs, 1)
            out[f"{prefix}distinct_2"] = distinct_n(seqs, 2)
            out[f"{prefix}ppl"] = perplexity(sum(r[nll] for r in self.rows), sum(r[tokens] for r in self.rows))
            out[f"{prefix}words"] = sum(len(s) for s in seqs) / max(1, len(seqs))
        out[f"repetition_{n}_above_human"] = out[f"repetition_{n}"] - out[f"human_repetition_{n}"]
        return out

    def on_test_epoch_end(self) -> None:
        self.rows.sort(key=lambda r: r["index"])
        for key, value in self.measures().items():
            self.log(f"test/{key}", value)
        tokens = sum(r["tokens"] for r in self.rows)
        self.log("test/tokens_per_s", tokens / self.decode_s if self.decode_s else 0.0)
        self.results["decode"] = self.decoding.as_dict()
        self.results["text_completion"] = {"prompts": len(self.rows), "max_new_tokens": self.max_new_tokens,
                                           "decode_s": round(self.decode_s, 2),
                                           "examples": [{k: r[k] for k in ("prompt", "continuation", "human")}
                                                        for r in self.rows[:3]]}
        if self.save_continuations and self.run_dir is not None and self.trainer.is_global_zero:
            path = write_text_atomic(self.run_dir / CONTINUATIONS_FILE,
                                     "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))
            self.results["continuations"] = str(path)
