"""Few-shot prompts for in-context learning (ch. 5, section 5.3, GPT): `task=few_shot`.

The test examples (SST-2 dev, or SNLI test/dev) and the pool the demonstrations are drawn from (SST-2 train;
SNLI dev when testing on test, test when testing on dev) as plain text, with the prompt template and label words
of each data set. A *draw* is k demonstrations taken at random from the pool (a pure function of the seed and
the draw number); `random_labels=true` replaces each demonstration's label by a random one (the ablation of
Min et al. 2022, "Rethinking the role of demonstrations"). No tokenizer here: the task module builds the
prompts with its model's tokenizer.

SST-2:  `Review: <sentence>\\nSentiment: positive|negative`, demonstrations separated by a blank line.
SNLI:   `<premise>\\nQuestion: <hypothesis> True, False or Neither?\\nAnswer: True|Neither|False`
        (entailment | neutral | contradiction), the prompt of the GPT-3 paper's NLI experiments.
SNLI files as mirrored (`<data_dir>/snli/{s1,s2,labels}.{dev,test}`, one tokenised sentence per line, line-aligned).

What it provides (`FewShotSpec`): the prompt format (template and label words), the number of draws and the prompt
prefix (the demonstrations as text) of each draw.
"""
from __future__ import annotations

import logging
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal, NamedTuple, get_args

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from leedl_cli.contract import AtLeastOne, NonNegative
from leedl_cli.data.files import data_reader
from leedl_cli.data.sst2 import read_tsv
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)

SNLI_LABELS = ("entailment", "neutral", "contradiction")
SNLI_HOW = ("the SNLI 1.0 pairs in the e-SNLI layout (s1.SPLIT, s2.SPLIT, labels.SPLIT), e.g. from "
            "github.com/OanaMariaCamburu/e-SNLI dataset/eSNLI/, or nlp.stanford.edu/projects/snli")
SST2_HOW = "the GLUE SST-2 train.tsv and dev.tsv (gluebenchmark.com, or HF datasets glue/sst2)"


class PromptFormat(NamedTuple):
    """How one example becomes text: `template` filled with its fields, then a label word."""
    template: str
    label_words: tuple[str, ...]
    separator: str = "\n\n"

    def render(self, fields: dict, label: int | None = None) -> str:
        text = self.template.format(**fields)
        return text if label is None else text + self.label_words[label]

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the example's fields the template reads."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)


Dataset = Literal["sst2", "snli"]
DATASETS = get_args(Dataset)
FORMATS = {
    "sst2": PromptFormat("Review: {sentence}\nSentiment:", (" negative", " positive")),
    "snli": PromptFormat("{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
                         (" True", " Neither", " False")),
}
DEFAULT_SPLIT = {"sst2": "dev", "snli": "test"}


@dataclass(frozen=True)
class FewShotSpec:
    """What the few-shot data gives the in-context-learning task."""

    prompt_format: PromptFormat              # template and label words of the data set
    draws: int                               # draws of demonstrations scored
    prompt_prefix: Callable[[int], str]      # draw -> its demonstrations as text ('' for k = 0)


@data_reader("SNLI", SNLI_HOW)
def read_snli_lines(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]


def read_snli(folder: Path, split: str) -> list[dict]:
    """Pairs of one SNLI split in the e-SNLI layout: {premise, hypothesis, label} (labels without gold left out)."""
    names = [f"s1.{split}", f"s2.{split}", f"labels.{split}"]
    require_files(folder, names, "SNLI", SNLI_HOW)
    s1, s2, labels = (read_snli_lines(folder / n) for n in names)
    if not len(s1) == len(s2) == len(labels):
        raise LeedlError(f"SNLI {split}: s1/s2/labels have {len(s1)}/{len(s2)}/{len(labels)} lines, not line-aligned")
    return [{"premise": p, "hypothesis": h, "label": SNLI_LABELS.index(y)}
            for p, h, y in zip(s1, s2, labels) if y in SNLI_LABELS]


def _collate(items: list[dict]) -> dict:
    return {"fields": [it["fields"] for it in items], "label": [it["label"] for it in items],
            "index": [it["index"] for it in items]}


class FewShotDataModule(pl.LightningDataModule):
    """Test examples and demonstration draws for in-context learning (no training split is loaded for fit)."""

    def __init__(self, dataset: Dataset = "sst2", data_dir: str | None = None,
                 split: Literal["dev", "test"] | None = None,
                 k: Annotated[int, NonNegative] = 4, draws: Annotated[int, AtLeastOne] = 1,
                 random_labels: bool = False, seed: int = 0,
                 max_test_examples: Annotated[int, AtLeastOne] | None = None,
                 batch_size: Annotated[int, AtLeastOne] = 16) -> None:
        super().__init__()
        problems = self.config_problems({"dataset": dataset, "split": split})
        if problems:
            raise LeedlError("task.data." + "; ".join(problems))
        split = split or DEFAULT_SPLIT[dataset]
        self.dataset, self.data_dir, self.split = dataset, data_dir, split
        self.k, self.draws, self.random_labels, self.seed = int(k), int(draws), bool(random_labels), int(seed or 0)
        self.max_test_examples, self.batch_size = max_test_examples, int(batch_size)
        self.format = FORMATS[dataset]
        self.num_classes = len(self.format.label_words)
        self.test_examples: list[dict] | None = None
        self.pool: list[dict] = []

    def _read(self) -> tuple[list[dict], list[dict]]:
        """(test examples, demonstration pool) as {fields..., label}."""
        if self.dataset == "sst2":
            folder = require_files(data_path(self.data_dir, "sst2"), ["train.tsv", "dev.tsv"], "GLUE SST-2", SST2_HOW)
            test = [{"sentence": s, "label": y} for s, y in read_tsv(folder / "dev.tsv")]
            pool = [{"sentence": s, "label": y} for s, y in read_tsv(folder / "train.tsv")]
            return test, pool
        folder = data_path(self.data_dir, "snli")
        other = "dev" if self.split == "test" else "test"
        return read_snli(folder, self.split), read_snli(folder, other)

    def setup(self, stage: str | None = None) -> None:
        if self.test_examples is not None:
            return
        test, self.pool = self._read()
        if self.max_test_examples:   # a fixed random subset (never dependent on the run's seed)
            order = list(range(len(test)))
            random.Random(0).shuffle(order)
            test = [test[i] for i in sorted(order[: int(self.max_test_examples)])]
        if self.k > len(self.pool):
            raise LeedlError(f"task.k={self.k}: the demonstration pool has only {len(self.pool)} examples")
        self.test_examples = [{"fields": {f: v for f, v in ex.items() if f != "label"}, "label": int(ex["label"]),
                               "index": i} for i, ex in enumerate(test)]
        log.info("few-shot %s %s: %d test examples, k=%d demonstrations from a pool of %d, %d draw(s)%s",
                 self.dataset, self.split, len(self.test_examples), self.k, len(self.pool), self.draws,
                 ", random labels" if self.random_labels else "")

    def demonstrations(self, draw: int) -> list[dict]:
        """The k demonstrations of draw number `draw` ({fields..., label}); labels random with random_labels."""
        self.setup()
        rng = random.Random(f"few-shot/{self.dataset}/{self.seed}/{draw}")
        chosen = [dict(self.pool[i]) for i in rng.sample(range(len(self.pool)), self.k)]
        if self.random_labels:
            for ex in chosen:
                ex["label"] = rng.randrange(self.num_classes)
        return chosen

    def prompt_prefix(self, draw: int) -> str:
        """The demonstrations of a draw as one text, each followed by the separator ('' for k = 0)."""
        fmt = self.format
        return "".join(fmt.render({f: v for f, v in ex.items() if f != "label"}, ex["label"]) + fmt.separator
                       for ex in self.demonstrations(draw))

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        if options.get("dataset") == "sst2" and options.get("split") == "test":
            return ["split=test: expected dev (or null) with dataset=sst2: SST-2's test labels are not public; the "
                    "GLUE dev set (872) is the test set"]
        return []

    def provides(self) -> FewShotSpec:
        return FewShotSpec(prompt_format=self.format, draws=self.draws, prompt_prefix=self.prompt_prefix)

    def test_dataloader(self):
        """Examples ordered by length (a batch pads to its longest prompt; similar lengths waste little), each
        with its `index` in the test set."""
        self.setup()
        ordered = sorted(self.test_examples, key=lambda ex: (sum(len(str(v)) for v in ex["fields"].values()),
                                                             ex["index"]))
        return DataLoader(ordered, batch_size=self.batch_size, shuffle=False, collate_fn=_collate)
