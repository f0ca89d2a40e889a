"""Chapter 4, section 4.8.5: training for BLEU with self-critical REINFORCE — the loss's sign on a tiny model,
sentence BLEU, the option's rules, the preset, and the task in debug=smoke starting from a run's weights."""
from __future__ import annotations

import pytest
import torch
from translation_runs import untrained_run

from leedl_cli.models.seq2seq import Seq2SeqTransformer
from leedl_cli.tasks.translation_rl import (
    leave_one_out,
    reinforce_loss,
    self_critical_loss,
    sentence_bleus,
    sequence_log_probs,
)

V, BOS, EOS, PAD = 24, 5, 6, 0


def tiny_model() -> Seq2SeqTransformer:
    torch.manual_seed(0)
    return Seq2SeqTransformer(V, V, PAD, d_model=16, num_encoder_layers=1, num_decoder_layers=1, num_heads=2,
                              d_ff=32, dropout=0.0)


@pytest.mark.parametrize("reward, rises", [(1.0, True), (0.0, False)])
def test_a_sample_better_than_greedy_becomes_more_probable(reward, rises):
    """Baseline (greedy BLEU) 0.5: a sample scoring 1.0 is pushed up by one step, one scoring 0.0 down."""
    m = tiny_model()
    src = torch.tensor([[9, 10, 11, EOS], [12, 13, EOS, PAD]])
    sample, ended = [[7, 8, 9], [10]], [True, False]
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    before = sequence_log_probs(m, src, sample, ended, BOS, EOS, PAD).detach()
    loss = reinforce_loss(sequence_log_probs(m, src, sample, ended, BOS, EOS, PAD), torch.full((2,), reward),
                          torch.full((2,), 0.5))
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = sequence_log_probs(m, src, sample, ended, BOS, EOS, PAD).detach()
    assert bool((after > before).all()) == rises and bool((after < before).all()) == (not rises), (before, after)


def test_sequence_log_probs_sum_the_tokens_and_the_end():
    m = tiny_model().eval()
    src = torch.tensor([[9, 10, 11, EOS]])
    scores, _ = m(src, torch.tensor([[BOS, 7, 8]]))
    logp = torch.log_softmax(scores, -1)[0]
    by_hand = logp[0, 7] + logp[1, 8] + logp[2, EOS]
    assert torch.allclose(sequence_log_probs(m, src, [[7, 8]], [True], BOS, EOS, PAD), by_hand.view(1), atol=1e-5)
    assert torch.allclose(sequence_log_probs(m, src, [[7, 8]], [False], BOS, EOS, PAD),
                          (logp[0, 7] + logp[1, 8]).view(1), atol=1e-5), "a cut sample has no [EOS] to score"


def test_sentence_bleu_is_smoothed_and_self_critical_reports_its_parts():
    perfect, partial, empty = sentence_bleus(["a dog runs in the park .", "a dog runs", ""],
                                             ["a dog runs in the park ."] * 3)
    assert perfect == pytest.approx(100.0) and 0.0 < partial < 100.0 and empty == 0.0
    m = tiny_model()
    torch.manual_seed(1)
    src = torch.tensor([[9, 10, 11, EOS], [12, 13, EOS, PAD]])
    loss, stats = self_critical_loss(m, src, ["x y", "z"], lambda ids: " ".join(map(str, ids)), BOS, EOS, PAD, [5, 4])
    assert set(stats) == {"reward", "baseline", "sample_bleu"} and loss.requires_grad and m.training
    assert stats["reward"] == pytest.approx(stats["sample_bleu"] - stats["baseline"])


def test_leave_one_out_baseline_centres_each_sources_advantages():
    rewards = torch.tensor([10.0, 20.0, 30.0, 0.0, 0.0, 6.0])   # two sources, three samples each
    base = leave_one_out(rewards, 3)
    assert base.tolist() == [25.0, 20.0, 15.0, 3.0, 3.0, 0.0]
    advantages = (rewards - base).view(2, 3)
    assert torch.allclose(advantages.sum(1), torch.zeros(2))   # some samples pushed up, some down, per source
    m = tiny_model()
    torch.manual_seed(1)
    src = torch.tensor([[9, 10, 11, EOS], [12, 13, EOS, PAD]])
    loss, stats = self_critical_loss(m, src, ["x y", "z"], lambda ids: " ".join(map(str, ids)), BOS, EOS, PAD, [5, 4],
                                     baseline="mean", samples=3)
    assert loss.requires_grad and stats["reward"] == pytest.approx(0.0, abs=1e-9)
    assert stats["baseline"] == pytest.approx(stats["sample_bleu"])


def test_self_critical_needs_weights_and_is_one_choice(compose_cfg):
    from typing import get_args, get_type_hints

    from leedl_cli.tasks.translation import OBJECTIVES, Objective, Translation
    from leedl_cli.validate import problems

    assert get_type_hints(Translation.__init__, include_extras=True)["objective"] is Objective
    assert get_args(Objective) == OBJECTIVES == ("cross_entropy", "self_critical")
    found = problems(compose_cfg(["task=translation", "task.module.objective=self_critical"]))
    assert any(line.startswith("task.module.objective=self_critical: ") and "weights_from" in line for line in found)
    found = problems(compose_cfg(["task=translation", "task.module.objective=reinforce"]))
    assert any(line.startswith("task.module.objective=reinforce: ") and "cross_entropy, self_critical" in line
               for line in found), found
    found = problems(compose_cfg(["task=translation", "task.module.rl_weight=1.5"]))
    assert any(line.startswith("task.module.rl_weight=1.5: ") for line in found), found
    found = problems(compose_cfg(["task=translation", "task.module.rl_baseline=mean"]))
    assert any(line.startswith("task.module.rl_samples=1: rl_baseline=mean needs") for line in found), found
    assert problems(compose_cfg(["task=translation", "task.module.rl_baseline=mean", "task.module.rl_samples=4"])) == []


def test_rl_bleu_preset_composes_and_validates(compose_cfg):
    from leedl_cli.validate import problems

    for objective in ("cross_entropy", "self_critical"):
        cfg = compose_cfg(["experiment=rl_bleu", "task.module.weights_from=/runs/ar",
                           f"task.module.objective={objective}"])
        assert problems(cfg) == [] and cfg.trainer.max_steps > 0
    cfg = compose_cfg(["experiment=rl_bleu"])
    assert cfg.report.book and all("check" in row for row in cfg.report.book)
    assert "self_critical" in cfg.hydra.sweeper.params["task.module.objective"]


def test_smoke_self_critical_from_a_runs_weights(run_leedl, tmp_path):
    teacher = untrained_run(tmp_path / "start", tmp_path / "data")
    r = run_leedl(["task=translation", "debug=smoke", f"data_dir={tmp_path}/data", "seed=0", "threads=1",
                   "task.module.objective=self_critical", f"task.module.weights_from={teacher}",
                   "task.module.rl_baseline=mean", "task.module.rl_samples=2", "model.num_encoder_layers=1", "model.num_decoder_layers=1", "model.num_heads=2", "model.d_ff=64",
                   "model.dropout=0.0", "task.module.speed_sentences=4", "task.module.attention_plot=false"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert {"train/reward", "train/baseline", "train/sample_bleu", "test/bleu", "test/repeat_rate",
            "test/sent_per_s_b1", "test/sent_per_s_b64"} <= set(m)
    assert r["weights_from"].endswith("last.ckpt") and r["val_bleu_curve"][0]["step"] > 0
    assert m["train/reward"] == pytest.approx(0.0, abs=1e-6)   # leave-one-out: the advantages sum to zero
