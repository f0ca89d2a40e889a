"""Every bad value is refused before anything runs: `leedl run ...` exits 2 with one line that names the key and
the value, creates no run directory and prints no traceback. A table across every task (ranges attached to the
parameters, choices as Literals, rules across options declared by the class that owns them)."""
from __future__ import annotations

import pytest

BAD = [
    # (command line, the start of the one line)
    (["seed=-1"], "seed=-1: expected an integer from 0"),
    (["threads=0"], "threads=0: expected an integer >= 1"),
    (["optimizer.lr=0"], "optimizer.lr=0: expected a number > 0"),
    (["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum=1.5: expected a number from 0 to 1"),
    (["optimizer=rmsprop", "optimizer.alpha=2"], "optimizer.alpha=2: expected a number from 0 to 1"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: expected an integer >= 1 (or -1)"),
    (["trainer.max_epochs=-2"], "trainer.max_epochs=-2: expected an integer >= 1 (or -1)"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5: expected a number of batches"),
    (["trainer.accelerator=quantum"], "trainer.accelerator=quantum: expected one of cpu"),
    (["scheduler=warmup_linear", "trainer.max_epochs=-1"], "trainer.max_epochs=-1: scheduler=warmup_linear needs"),
    (["task.test_weights=middle"], "task.test_weights=middle: expected one of best, last, ema"),
    (["task.monitor_mode=middle"], "task.monitor_mode=middle: expected one of min, max"),
    (["task.data.batch_size=0"], "task.data.batch_size=0: expected an integer >= 1"),
    (["model=mlp", "model.dropout=1.5"], "model.dropout=1.5: expected a number from 0 to 1"),
    (["task=mnist", "+task.data.train_fraction=0"], "task.data.train_fraction=0: expected a number > 0"),
    (["task=cifar10", "task.data.augment=spin"], "task.data.augment"),
    (["task=translation", "task.beam_size=0"], "task.beam_size=0: expected an integer >= 1"),
    (["task=translation", "task.top_p=1.5"], "task.top_p=1.5: expected a number > 0 and <= 1"),
    (["task=translation", "task.temperature=0"], "task.temperature=0: expected a number > 0"),
    (["task=translation", "task.decode=beams"], "task.decode=beams: expected one of greedy, beam, sampling"),
    (["task=translation", "model.d_model=30", "model.num_heads=4"], "model.num_heads=4"),
    (["task=translation", "task.module.label_smoothing=1.5"], "task.module.label_smoothing=1.5"),
    (["task=translation", "task.data.vocab=chars"], "task.data.vocab=chars: expected one of"),
    (["task=pos_tagging", "model=self_attention", "model.window=-2"], "model.window=-2"),
    (["task=pos_tagging", "model=self_attention", "model.num_heads=0"], "model.num_heads=0"),
    (["task=pos_tagging", "model=self_attention", "model.dropout=-0.1"], "model.dropout=-0.1"),
    (["task=pos_tagging", "model=self_attention", "model.positional_encoding=rope"], "model.positional_encoding=rope"),
    (["task=sentiment", "task.data.max_length=0"], "task.data.max_length=0"),
    (["task=cartpole", "task.module.gamma=1.5"], "task.module.gamma=1.5"),
    (["task=cartpole", "task.module.version=v9"], "task.module.version=v9: expected one of"),
    (["task=cartpole", "task.data.n_envs=0"], "task.data.n_envs=0"),
    (["task=lunar_lander", "task.module.n_steps=0"], "task.module.n_steps=0"),
    (["task=go_policy", "task.data.features=planes"], "task.data.features=planes: expected one of"),
    (["task=go_policy", "model.filters=0"], "model.filters=0"),
    (["task=dann", "task.ema_decay=1.5"], "task.ema_decay=1.5"),
    (["task=dann", "task.module.mode=both"], "task.module.mode=both: expected one of"),
    (["task=error_surface", "optimizer.lr=-1"], "optimizer.lr=-1: expected a number > 0"),
    (["task=bert_squad", "task.data.stride=-1"], "task.data.stride=-1"),
    (["task=bert_squad", "model.pooling=max"], "model.pooling=max: expected one of"),
    (["task=nli", "task.data.max_length=0"], "task.data.max_length=0"),
    (["task=mlm_pretrain", "task.data.mask_probability=1.5"], "task.data.mask_probability=1.5"),
    (["task=lm_pretrain", "model.num_heads=3"], "model.num_heads=3"),
    (["task=few_shot", "task.data.batch_size=0"], "task.data.batch_size=0"),
    (["trainer.max_epoch=2"], "trainer.max_epoch: no such key; did you mean trainer.max_epochs?"),
    (["optimzer=adam"], "optimzer: no such key; did you mean optimizer?"),
]


@pytest.mark.parametrize("args,start", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_value_exits_2_with_one_line_and_no_run_directory(tmp_path, capsys, args, start):
    from leedl_cli.cli import main

    with pytest.raises(SystemExit) as info:
        main(["run", *args, f"output_root={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"leedl: error: {start}"), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_table_is_wide():
    tasks = {a.split("=", 1)[1] for args, _ in BAD for a in args if a.startswith("task=")}
    assert len(BAD) >= 40 and len(tasks) >= 14, (len(BAD), tasks)
