"""One rule for "the same job": which command-line overrides say *what* a run computes.

Used by `skip_done` and `resume=auto` (is this job already done / still unfinished?), by `leedl report`
(which runs are seeds of one group) and by the wandb logger (`job_type` = the group, so wandb's own grouping
shows mean ± std over seeds as the report does). Options that only say how or where to run do not make a
different job; the seed makes a different job but not a different group. Imports nothing heavy.
"""
from __future__ import annotations

import hashlib

# overrides that say how or where a job runs, not what it computes
NOT_PART_OF_THE_JOB = {"resume", "skip_done", "threads", "output_root", "data_dir", "wandb_id", "ckpt_path",
                       "channels_last", "name", "tags", "logger", "trainer.enable_progress_bar"}
NOT_PART_OF_THE_JOB_PREFIXES = ("hydra", "logger.", "--")
SEED = "seed"


def split_override(item: str) -> tuple[str, str]:
    """`+key=value` -> (key, value); `+`/`++`/`~` prefixes do not change which key an override sets."""
    key, _, value = item.partition("=")
    return key.lstrip("+~"), value


def is_part_of_the_job(key: str) -> bool:
    return key not in NOT_PART_OF_THE_JOB and not key.startswith(NOT_PART_OF_THE_JOB_PREFIXES)


def job_key(overrides: list[str]) -> tuple[str, ...]:
    """What makes two runs the same job (the seed included), normalised: order and prefixes do not matter."""
    keep = []
    for item in overrides:
        key, value = split_override(item)
        if is_part_of_the_job(key):
            keep.append(f"{key}={value}")
    return tuple(sorted(keep))


def group_key(overrides: list[str]) -> tuple[str, ...]:
    """The job without its seed: the runs of one group differ only in their seeds."""
    return tuple(item for item in job_key(overrides) if split_override(item)[0] != SEED)


def group_label(overrides: list[str]) -> str:
    """The group as a person reads it: the job's overrides in the order given, without the seed."""
    parts = [o for o in overrides if is_part_of_the_job(split_override(o)[0]) and split_override(o)[0] != SEED]
    return " ".join(parts) or "(defaults)"


def wandb_job_type(overrides: list[str], limit: int = 64) -> str:
    """wandb's `job_type` for a run: its group label, shortened with a stable hash when too long for wandb."""
    label = group_label(overrides)
    if len(label) <= limit:
        return label
    digest = hashlib.sha1(" ".join(group_key(overrides)).encode()).hexdigest()[:8]
    return f"{label[:limit - 10]}…{digest}"
