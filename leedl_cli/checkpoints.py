"""The checkpoints of a run directory, and a model's weights from one (`weights_from`, `leedl translate`).

A run keeps its checkpoints in `<run dir>/checkpoints/` (conf/callbacks/default.yaml): `last.ckpt`, the newest
epoch (what `resume=` continues from), and `epochNNN.ckpt`, the best epoch by the task's monitor;
`interrupted.ckpt` is what a stopped run left when it could not write `last.ckpt`. A Lightning checkpoint holds
the task module's `state_dict`, in which the model's weights are the keys under `model.`.
"""
from __future__ import annotations

from pathlib import Path

from leedl_cli.errors import LeedlError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
INTERRUPTED = "interrupted.ckpt"


class CheckpointNotFoundError(LeedlError):
    """A run directory or checkpoint path that holds no checkpoint."""


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir).expanduser() / CHECKPOINT_DIR


def last_checkpoint(run_dir) -> Path | None:
    """`checkpoints/last.ckpt` of a run directory, or None."""
    path = checkpoint_dir(run_dir) / LAST
    return path if path.is_file() else None


def best_checkpoint(run_dir) -> Path | None:
    """The best epoch's checkpoint of a run directory, or None. With more than one kept (save_top_k > 1), the one
    `last.ckpt` names as its monitor's best, else the newest epoch's."""
    folder = checkpoint_dir(run_dir)
    kept = sorted(p for p in folder.glob("*.ckpt") if p.name not in (LAST, INTERRUPTED)) if folder.is_dir() else []
    if len(kept) > 1 and (last := last_checkpoint(run_dir)) is not None:
        named = best_named_in(last)
        kept = [p for p in kept if p.name == named] or kept
    return kept[-1] if kept else None


def best_named_in(ckpt: Path) -> str | None:
    """The file name of the best checkpoint a checkpoint's ModelCheckpoint state records (with a monitor)."""
    for state in read_checkpoint(ckpt).get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("best_model_path"):
            return Path(state["best_model_path"]).name
    return None


def checkpoint_file(run_dir_or_ckpt) -> Path:
    """A .ckpt as given, or a run directory's best checkpoint, else its last one."""
    path = Path(run_dir_or_ckpt).expanduser()
    if path.is_file():
        return path
    found = best_checkpoint(path) or last_checkpoint(path)
    if found is None:
        raise CheckpointNotFoundError(f"{path}: neither a .ckpt file nor a run directory with "
                                      f"{CHECKPOINT_DIR}/*.ckpt; give a run directory or a checkpoint file")
    return found


def run_dir_of(ckpt: Path) -> Path:
    """The run directory a checkpoint belongs to (the folder above `checkpoints/`, else its own folder)."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == CHECKPOINT_DIR else ckpt.parent


def read_checkpoint(ckpt) -> dict:
    import torch

    try:
        return torch.load(Path(ckpt), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise CheckpointNotFoundError(f"{ckpt}: not a readable checkpoint ({err})") from err


def model_state(ckpt, prefix: str = "model.") -> dict:
    """The model's weights in a Lightning checkpoint (the task module's keys under `prefix`, prefix removed)."""
    state = read_checkpoint(ckpt).get("state_dict", {})
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointNotFoundError(f"{ckpt}: no weights under {prefix!r} (not a leedl task checkpoint?)")
    return weights


def load_model_weights(model, run_dir_or_ckpt, prefix: str = "model.") -> Path:
    """Load a model's weights from a run directory (its best checkpoint, else its last) or a .ckpt; the
    checkpoint file used. A model of another shape is a clear error."""
    ckpt = checkpoint_file(run_dir_or_ckpt)
    try:
        model.load_state_dict(model_state(ckpt, prefix))
    except RuntimeError as err:
        raise LeedlError(f"{ckpt}: its weights do not fit this model (another architecture or vocabulary?): "
                         f"{str(err).splitlines()[0]}") from err
    return ckpt
