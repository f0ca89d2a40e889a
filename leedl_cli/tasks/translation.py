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

Validation: loss under teacher forcing and corpus BLEU of greedy translations (`val/bleu`, the monitor: the best
checkpoint is the one with the best validation BLEU; `val_bleu_sentences: N` scores the first N validation pairs
only, as decoding costs more than the loss). Test: the weights of that best checkpoint (run.py tests the
module as it is, so this task loads them itself in `on_test_start`), decoded with `decode: greedy | beam |
sampling` (`beam_size`, `length_penalty`, `temperature`, `top_k`, `top_p`; leedl_cli.decoding), scored with
sacreBLEU on detokenised text (cased; tokenizer `13a`, `zh` for a Chinese target) and chrF, plus distinct-1/2
(diversity) and the mean hypothesis length. `predictions_test.txt` (one hypothesis per line, in test-file order)
and `references_test.txt` go beside results.json so anyone can re-score them, and plots/ gets the
cross-attention of one test sentence for every layer (one panel per head) and `bleu_vs_time.png`, validation
BLEU against the wall time of fitting (also `val_bleu_curve` in results.json: epoch, step, minutes, BLEU).

`weights_from: <run dir or .ckpt>` starts from trained weights (with `task.fit=false`: test a trained model with
other decoding options). `translate(run_dir_or_ckpt, sentences, decode=...)` is the Python call behind
`leedl translate`.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from leedl_cli.decoding import check_options, distinct_n, generate
from leedl_cli.errors import LeedlError
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
SCHEDULES = ("none", "linear", "inverse_sigmoid", "exponential")
VOCAB_FILES = ("vocab_src.json", "vocab_tgt.json")
MODEL_FILE = "translation_model.json"   # the model's class and constructor arguments (what `translate` rebuilds)


def sampling_probability(schedule: str, progress: float, maximum: float) -> float:
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
    raise LeedlError(f"task.module.scheduled_sampling={schedule!r}: one of {', '.join(SCHEDULES)}")


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
    def __init__(self, model, optimizer=None, scheduler=None, pad_token_id: int = 0, label_smoothing: float = 0.1,
                 scheduled_sampling: Literal["none", "linear", "inverse_sigmoid", "exponential"] = "none", scheduled_sampling_max: float = 0.25,
                 guided_attention: float = 0.0, guided_attention_sigma: float = 0.2,
                 decode: Literal["greedy", "beam", "sampling"] = "greedy", beam_size: int = 5, length_penalty: float = 1.0, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, max_len_a: float = 1.5, max_len_b: int = 10,
                 decode_seed: int = 0, val_bleu: bool = True, val_bleu_sentences: int | None = None,
                 attention_plot: bool = True,
                 weights_from: str | None = None) -> None:
        super().__init__(model, optimizer, scheduler)
        if scheduled_sampling not in SCHEDULES:
            raise LeedlError(f"task.module.scheduled_sampling={scheduled_sampling!r}: one of {', '.join(SCHEDULES)}")
        check_options(decode, beam_size, temperature, top_k, top_p)
        self.pad, self.label_smoothing = int(pad_token_id), float(label_smoothing)
        self.scheduled_sampling, self.ss_max = scheduled_sampling, float(scheduled_sampling_max)
        self.guided_attention, self.guided_sigma = float(guided_attention), float(guided_attention_sigma)
        self.decode_options = dict(strategy=decode, beam_size=int(beam_size), length_penalty=float(length_penalty),
                                   temperature=float(temperature), top_k=int(top_k), top_p=float(top_p))
        self.max_len_a, self.max_len_b, self.decode_seed = float(max_len_a), int(max_len_b), int(decode_seed)
        self.val_bleu, self.attention_plot, self.weights_from = bool(val_bleu), bool(attention_plot), weights_from
        self.val_bleu_sentences = None if val_bleu_sentences is None else int(val_bleu_sentences)
        self._eval: dict[str, dict] = {}
        self._train_tokens = 0
        self.vocab = None            # the data module (detokenisation, references), set in setup()
        self._loaded_from: str | None = None
        # validation BLEU against training wall time (the "BLEU against wall time"): one point per
        # validation pass, kept in checkpoints so a resumed run continues the curve and the clock
        self.bleu_curve: list[dict] = []
        self._clock_offset = 0.0
        self._clock_start: float | None = None

    # ---- set-up ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self._trainer is not None and getattr(self.trainer, "datamodule", None) is not None:
            self.vocab = self.trainer.datamodule
        if self.weights_from and self._loaded_from is None:
            path = checkpoint_file(self.weights_from)
            load_model_weights(self.model, path)
            self._loaded_from = str(path)
            self.results["weights_from"] = str(path)

    def on_fit_start(self) -> None:
        dm = self.vocab
        if self.run_dir is not None and dm is not None and self.trainer.is_global_zero:
            dm.src_vocab.save(self.run_dir / VOCAB_FILES[0])      # what `translate` needs besides the weights
            dm.tgt_vocab.save(self.run_dir / VOCAB_FILES[1])
            if hasattr(self.model, "config"):
                from leedl_cli.results import write_json_atomic

                model_class = type(self.model)
                write_json_atomic(self.run_dir / MODEL_FILE, {
                    "target": f"{model_class.__module__}.{model_class.__qualname__}", "kwargs": self.model.config,
                    "max_length": dm.max_length})

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

    def training_step(self, batch, batch_idx):
        loss, _, n = self.loss(batch, "train")
        self._train_tokens += n
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/tokens", float(self._train_tokens))
        self._train_tokens = 0

    # ---- decoding ----------------------------------------------------------------------------
    def translate_ids(self, src: torch.Tensor, **options) -> list[list[int]]:
        """Target token ids (no [BOS]/[EOS]) for a padded source batch."""
        opts = {**self.decode_options, **options}
        dm = self.vocab
        bos, eos = dm.tgt_vocab.bos_token_id, dm.tgt_vocab.eos_token_id
        length = int((src != self.pad).sum(1).max())
        max_new = int(self.max_len_a * length + self.max_len_b)
        generator = None
        if opts["strategy"] == "sampling":
            generator = torch.Generator().manual_seed(self.decode_seed + int(src.sum()))
        prefix = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = generate(self.model.step_fn(src), prefix, eos, max_new, generator=generator, **opts)
        self.model.train(was)
        return out

    def _eval_step(self, batch, stage: str) -> None:
        _, ce, n = self.loss(batch, stage)
        store = self._eval.setdefault(stage, {"loss": 0.0, "n": 0, "hyps": {}})
        store["loss"] += float(ce) * n
        store["n"] += n
        if stage == "test" or self.val_bleu:
            opts = {} if stage == "test" else {"strategy": "greedy"}
            index, src = batch["feature_index"], batch["src_ids"]
            if stage == "val" and self.val_bleu_sentences is not None:   # BLEU on the first N validation pairs
                keep = index < self.val_bleu_sentences
                index, src = index[keep], src[keep]
                if not len(index):
                    return
                src = src[:, : int((src != self.pad).sum(1).max())]
            for fi, ids in zip(index.tolist(), self.translate_ids(src, **opts)):
                store["hyps"][fi] = ids

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
        dm = self.vocab
        order = sorted(store["hyps"])
        hyps = [dm.detokenize(store["hyps"][i]) for i in order]
        refs = [dm.texts[stage][i][1] for i in order]
        scores = corpus_scores(hyps, refs, dm.bleu_tokenize)
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
        if self.run_dir is not None and self.trainer.is_global_zero:
            self.results["bleu_plot"] = str(plot_bleu_curve(self.bleu_curve, self.plots_dir() / "bleu_vs_time.png"))

    # ---- test --------------------------------------------------------------------------------
    def on_test_start(self) -> None:
        """Test the best-validation-BLEU weights (run.py calls trainer.test on the module as it is)."""
        best, score = "", None
        for cb in getattr(self.trainer, "checkpoint_callbacks", []):
            if getattr(cb, "monitor", None) == "val/bleu" and cb.best_model_path:
                best, score = cb.best_model_path, cb.best_model_score
        if best and Path(best).is_file():
            load_model_weights(self.model, Path(best))
            self.results["tested_checkpoint"] = best
            self.results["best_val_bleu"] = float(score) if score is not None else None
        else:
            self.results["tested_checkpoint"] = self._loaded_from or "the weights at the end of training"

    def on_test_epoch_end(self) -> None:
        store = self._finish("test")
        if store is None or "hyps_text" not in store:
            return
        seqs = [store["hyps"][i] for i in store["order"]]
        self.log("test/distinct_1", distinct_n(seqs, 1))
        self.log("test/distinct_2", distinct_n(seqs, 2))
        self.log("test/length", sum(len(s) for s in seqs) / max(1, len(seqs)))
        self.results["decode"] = dict(self.decode_options)
        self.results["bleu_signature"] = store["scores"]["signature"]
        self.results["test_sentences"] = len(seqs)
        if self.run_dir is not None and self.trainer.is_global_zero:
            from leedl_cli.results import replace_atomically

            replace_atomically(self.run_dir / "predictions_test.txt",
                               lambda fh: fh.write("".join(h.replace("\n", " ") + "\n" for h in store["hyps_text"])))
            replace_atomically(self.run_dir / "references_test.txt",
                               lambda fh: fh.write("".join(r + "\n" for r in store["refs"])))
            self.results["predictions"] = str(self.run_dir / "predictions_test.txt")
            if self.attention_plot:
                self._draw_cross_attention()

    def _draw_cross_attention(self, lo: int = 8, hi: int = 16) -> None:
        dm = self.vocab
        feats = dm.features["test"]
        index = next((i for i, f in enumerate(feats) if lo <= len(f["src_ids"]) <= hi), 0)
        src = torch.tensor([feats[index]["src_ids"]], device=self.device)
        hyp = self.translate_ids(src, strategy="greedy")[0]
        bos, eos = dm.tgt_vocab.bos_token_id, dm.tgt_vocab.eos_token_id
        tgt_in = torch.tensor([[bos] + hyp], device=self.device)
        weights = self.model.cross_attention(src, tgt_in)
        src_words = [dm.src_vocab.id_to_token(i) for i in feats[index]["src_ids"]]
        tgt_words = [dm.tgt_vocab.id_to_token(i) for i in hyp + [eos]]
        paths = [str(plot_cross_attention(w[0], src_words, tgt_words,
                                          self.plots_dir() / f"cross_attention_layer{k + 1}.png",
                                          f"decoder layer {k + 1}: cross-attention (test sentence {index})"))
                 for k, w in enumerate(weights) if w is not None]
        self.results["attention_plots"] = paths


def plot_bleu_curve(curve: list[dict], path, title: str = "validation BLEU (greedy) against training time") -> Path:
    """One point per validation pass: minutes of fitting on x, BLEU on y, each point labelled with its epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    minutes, bleu = [c["minutes"] for c in curve], [c["val_bleu"] for c in curve]
    ax.plot(minutes, bleu, marker="o")
    for c in curve:
        ax.annotate(f"ep {c['epoch'] + 1}", (c["minutes"], c["val_bleu"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("wall time of fitting (minutes)")
    ax.set_ylabel("validation BLEU")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cross_attention(weights: torch.Tensor, src_words: list[str], tgt_words: list[str], path,
                         title: str = "") -> Path:
    """weights [H, T, S] (row t = target piece t, column s = source piece s) -> one heat map per head."""
    from leedl_cli.analysis.attention_maps import plot_heads

    return plot_heads(weights, tgt_words, path, title, key_words=src_words, query_label="generated piece",
                      key_label="source piece")


# ---- loading trained models ----------------------------------------------------------------------
def checkpoint_file(run_dir_or_ckpt) -> Path:
    """A .ckpt as given, or a run directory's best checkpoint (checkpoints/epochNNN.ckpt), else its last.ckpt."""
    path = Path(run_dir_or_ckpt).expanduser()
    if path.is_file():
        return path
    folder = path / "checkpoints"
    best = sorted(p for p in folder.glob("*.ckpt") if p.name != "last.ckpt") if folder.is_dir() else []
    for candidate in best[-1:] + [folder / "last.ckpt"]:
        if candidate.is_file():
            return candidate
    raise LeedlError(f"{path}: neither a .ckpt file nor a run directory with checkpoints/*.ckpt")


def load_model_weights(model: torch.nn.Module, ckpt: Path) -> None:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(weights)


def translate(run_dir_or_ckpt, sentences: list[str], decode: str = "beam", beam_size: int = 5,
              length_penalty: float = 1.0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
              seed: int = 0, batch_size: int = 64) -> list[str]:
    """Translate `sentences` with a trained `task=translation` run (its directory, or a .ckpt inside one).

    The files the run wrote when training started rebuild the model (translation_model.json: its class and
    constructor arguments) and its vocabularies (vocab_src.json / vocab_tgt.json: encoding, detokenisation);
    the weights are the best validation-BLEU checkpoint.
    """
    import json

    import hydra

    from leedl_cli.data.tokenizers import Vocabulary

    check_options(decode, beam_size, temperature, top_k, top_p)
    ckpt = checkpoint_file(run_dir_or_ckpt)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    needed = [run_dir / n for n in (MODEL_FILE, *VOCAB_FILES)]
    if not all(p.is_file() for p in needed):
        raise LeedlError(f"{run_dir}: not a task=translation run directory (needs {', '.join(p.name for p in needed)})")
    spec = json.loads((run_dir / MODEL_FILE).read_text())
    src_vocab, tgt_vocab = Vocabulary.load(needed[1]), Vocabulary.load(needed[2])
    model = hydra.utils.get_object(spec["target"])(**spec["kwargs"])
    load_model_weights(model, ckpt)
    model.eval()
    max_length = int(spec.get("max_length", 128))
    out: list[str] = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start:start + batch_size]
        ids = [x[: max_length - 1] + [src_vocab.eos_token_id] for x in src_vocab.encode_batch(chunk)]
        longest = max(len(x) for x in ids)
        src = torch.tensor([x + [src_vocab.pad_token_id] * (longest - len(x)) for x in ids])
        prefix = torch.full((len(chunk), 1), tgt_vocab.bos_token_id, dtype=torch.long)
        gen = torch.Generator().manual_seed(seed + start) if decode == "sampling" else None
        with torch.no_grad():
            hyps = generate(model.step_fn(src), prefix, tgt_vocab.eos_token_id, int(1.5 * longest + 10),
                            strategy=decode, beam_size=beam_size, length_penalty=length_penalty,
                            temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
        out += [tgt_vocab.decode(h) for h in hyps]
    return out
