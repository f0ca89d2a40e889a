"""Label shift (ch. 6, section 6.1): the class proportions of the data, EM's prior estimate, the task end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ch2_files import write_idx_set
from conftest import data_available

from leedl_cli.data.label_shift import LabelShiftMNISTDataModule, imbalance_fractions, keep_per_class
from leedl_cli.tasks.label_shift import adjust, em_priors, fit_temperature


def test_imbalance_fractions_fall_geometrically_and_reverse():
    f = imbalance_fractions(0.05)
    assert f[0] == 1.0 and f[9] == pytest.approx(0.05) and all(a > b for a, b in zip(f, f[1:]))
    assert imbalance_fractions(0.05, reverse=True) == f[::-1]
    assert imbalance_fractions(1.0) == [1.0] * 10


def test_keep_per_class_draws_the_counts_asked_for_the_same_way_every_time():
    y = torch.arange(10).repeat(20)
    kept = keep_per_class(y, [k + 1 for k in range(10)])
    assert torch.bincount(y[kept]).tolist() == list(range(1, 11))
    assert torch.equal(kept, keep_per_class(y, [k + 1 for k in range(10)]))


def _gaussian_posteriors(priors: torch.Tensor, source: torch.Tensor, n: int, seed: int):
    """Samples of 1-d Gaussian classes (mean = class index, std 1) drawn with `priors`, and their exact Bayes
    posteriors under the `source` priors."""
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(priors, n, replacement=True, generator=g)
    x = y.double() + torch.randn(n, generator=g, dtype=torch.float64)
    means = torch.arange(len(priors), dtype=torch.float64)
    log_lik = -0.5 * (x[:, None] - means[None]) ** 2
    return (log_lik + source.log()).softmax(-1), y


def test_em_recovers_the_test_priors_from_exact_posteriors_and_the_correction_helps():
    source = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    target = source.flip(0)
    probs, y = _gaussian_posteriors(target, source, 20000, seed=0)
    estimate, steps = em_priors(probs, source, iterations=500)
    assert (estimate - target).abs().sum() < 0.05 and 1 <= steps <= 500, estimate
    plain = (probs.argmax(-1) == y).double().mean()
    corrected = (adjust(probs, source, estimate).argmax(-1) == y).double().mean()
    assert corrected > plain + 0.05, (plain, corrected)   # Bayes under the true priors beats Bayes under the old
    same, _ = em_priors(*_gaussian_posteriors(source, source, 20000, seed=1)[:1], source)
    assert (same - source).abs().sum() < 0.05
    assert torch.allclose(adjust(probs, source, source), probs)


def test_fit_temperature_finds_how_much_the_logits_were_sharpened():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 10, generator=g) * 2
    y = torch.multinomial(true_logits.softmax(-1), 1, generator=g).squeeze(1)
    assert fit_temperature(true_logits * 3, y) == pytest.approx(3.0, rel=0.15)
    assert fit_temperature(true_logits, y) == pytest.approx(1.0, rel=0.15)


def test_data_module_imbalances_the_source_and_shapes_the_test(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=2000, n_test=1000)
    specs = {}
    for priors in ("train", "balanced", "reversed"):
        dm = LabelShiftMNISTDataModule(root=str(tmp_path), val_size=500, train_imbalance=0.1, test_priors=priors,
                                       download=False)
        specs[priors] = spec = dm.provides()
        assert sum(spec.source_priors) == pytest.approx(1.0) and sum(spec.target_priors) == pytest.approx(1.0)
        counts = torch.bincount(dm.train[1], minlength=10).tolist()
        assert counts[0] > 5 * counts[9]   # digit 0 all its images, digit 9 a tenth of them
        assert len(spec.val_set()[1]) < 500
    assert specs["train"].target_priors == pytest.approx(specs["train"].source_priors, abs=0.02)
    assert max(specs["balanced"].target_priors) == pytest.approx(0.1, abs=1e-9)
    assert specs["reversed"].target_priors[9] > 5 * specs["reversed"].target_priors[0]


def test_smoke_label_shift_logs_the_corrections_and_draws_the_priors(run_leedl, tmp_path):
    write_idx_set(tmp_path / "data" / "mnist", n_train=1200, n_test=400)
    r = run_leedl(["task=label_shift", "debug=smoke", f"data_dir={tmp_path}/data", "seed=0",
                   "task.data.val_size=200"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert {"test/acc", "test/acc_em", "test/acc_oracle", "test/em_gain", "test/prior_l1_em",
            "test/prior_error_ratio", "test/temperature"} <= set(m)
    assert m["test/em_gain"] == pytest.approx(m["test/acc_em"] - m["test/acc"])
    shift = r["label_shift"]
    assert len(shift["em_priors"]) == 10 and sum(shift["em_priors"]) == pytest.approx(1.0, abs=1e-3)
    assert Path(shift["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((Path(r["run_dir"]) / "results.json").read_text())["label_shift"]["em_iterations"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(not data_available("mnist"), reason="reads the mirrored MNIST files (CI has them)")
def test_mnist_reversed_priors_pinned(run_leedl):
    """Pinned: an MLP trained 3 epochs on MNIST with digit 9 at 5 % of its images, tested on reversed proportions:
    EM's correction lifts accuracy by about five points, nearly to what the true priors give."""
    r = run_leedl(["task=label_shift", "seed=0", "threads=1", "logger=csv"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert m["test/acc"] == pytest.approx(PINNED_PLAIN, abs=0.015), m
    assert m["test/acc_em"] == pytest.approx(PINNED_EM, abs=0.015), m
    assert m["test/em_gain"] > 0.02 and m["test/prior_error_ratio"] < 0.1, m


# measured: seed 0, one thread, the mirror's MNIST (3,038 reversed-proportion test images)
PINNED_PLAIN = 0.8851
PINNED_EM = 0.9368
