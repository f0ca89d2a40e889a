"""Extractive question answering data (ch. 5, Figs 5.14-5.16): any SQuAD-format JSON.

Data options (`task.data.dataset`): `squad` (SQuAD v1.1; dev mirrored as `squad/dev-v1.1.json.zip`,
`train-v1.1.json` used when present), `drcd` (DRCD, Traditional Chinese), `xquad_en`, `xquad_zh`, or
your own files via `task.data.train_file` / `task.data.dev_file` (CMRC and others in SQuAD format).

With a training file: train = that file; its own last articles are validation; the dev file is the test
set. Without one: the available file is split *by article* (no passage is shared between splits),
deterministically, into train/val/test; the split is written into the run's results.json.

Each question becomes `[CLS] question [SEP] passage [SEP]` windows of `max_length` tokens; a long
passage is cut into overlapping windows (`stride` tokens of overlap), each window keeping the offsets
of its passage tokens so the predicted span maps back to characters of the original text.

What it provides (`SquadSpec`): the backbone's vocabulary size and tokenizer (saved with the fine-tuned model),
the questions and windows of the evaluation splits (decoding spans back to text) and how the data was split.
"""
from __future__ import annotations

import json
import logging
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from leedl_cli.contract import AtLeastOne, NonNegative
from leedl_cli.data.files import data_reader
from leedl_cli.data.tokenized import SPLIT_SEED, PadCollator, TokenizedDataModule
from leedl_cli.data.tokenizers import load_pretrained_tokenizer
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)

# option -> (folder, file to split or test on, training files used when present)
DATASETS = {
    "squad": ("squad", ["dev-v1.1.json", "dev-v1.1.json.zip"], ["train-v1.1.json", "train-v1.1.json.zip"]),
    "drcd": ("drcd", ["DRCD_dev.json"], ["DRCD_training.json", "DRCD_train.json"]),
    "xquad_en": ("xquad", ["xquad.en.json"], []),
    "xquad_zh": ("xquad", ["xquad.zh.json"], []),
}
SOURCES = {
    "squad": "rajpurkar.github.io/SQuAD-explorer (dev-v1.1.json) or HF datasets `squad`",
    "drcd": "github.com/DRCKnowledgeTeam/DRCD (DRCD_dev.json, DRCD_test.json)",
    "xquad_en": "github.com/google-deepmind/xquad (xquad.en.json)",
    "xquad_zh": "github.com/google-deepmind/xquad (xquad.zh.json)",
}


@data_reader('SQuAD-format data', 'SQuAD: rajpurkar.github.io/SQuAD-explorer; XQuAD: github.com/google-deepmind/xquad; DRCD: github.com/DRCKnowledgeTeam/DRCD')
def read_squad(path: str | Path) -> list[dict]:
    """The `data` list (articles with paragraphs and qas) of a SQuAD-format JSON file, or of a .zip holding one."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".json")), None)
            if name is None:
                raise LeedlError(f"{path} holds no .json file")
            doc = json.loads(zf.read(name).decode("utf-8"))
    else:
        doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "data" not in doc:
        raise LeedlError(f"{path} is not SQuAD format: expected {{'data': [{{'paragraphs': [...]}}]}}")
    return doc["data"]


def _first_existing(folder: Path, names: list[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def dataset_file(dataset: str, data_dir: str | None) -> Path:
    """The file of a data option that is split (or tested on): raises a DataNotFoundError naming the fix."""
    if dataset not in DATASETS:
        raise LeedlError(f"unknown task.data.dataset={dataset}: one of {', '.join(DATASETS)}, "
                         f"or give task.data.dev_file=<SQuAD-format json>")
    folder_name, names, _ = DATASETS[dataset]
    folder = data_path(data_dir, folder_name)
    found = _first_existing(folder, names)
    if found is None:
        require_files(folder, names[:1], dataset, f"download it from {SOURCES[dataset]} into {folder}")
    return found


def examples_of(articles: list[dict]) -> list[dict]:
    """One dict per question: id, title, question, context, answers {text: [...], answer_start: [...]}."""
    out = []
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = qa.get("answers") or []
                out.append({"id": str(qa["id"]), "title": article.get("title", ""), "question": qa["question"].strip(),
                            "context": para["context"], "answers": {"text": [a["text"] for a in answers],
                                                                    "answer_start": [int(a["answer_start"]) for a in answers]}})
    return out


def split_articles(articles: list[dict], fractions=(0.8, 0.1, 0.1), seed: int = SPLIT_SEED):
    """Deterministic split by article: (train, val, test) lists of articles and the titles of each."""
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    if n < 3:
        raise LeedlError(f"cannot split {n} article(s) into train/val/test: give task.data.train_file")
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple([articles[i] for i in sorted(p)] for p in parts)


def tokenize_examples(tokenizer, examples: list[dict], max_length: int, stride: int, train: bool) -> list[dict]:
    """Windows `[CLS] question [SEP] passage [SEP]` with overlapping passage windows.

    Training windows get start/end token positions of the first answer (0 = [CLS] when the answer is
    not inside the window). Evaluation windows keep `example_index` and `offsets` (character span of
    each passage token, None for question/special tokens) for decoding.
    """
    pad_right = tokenizer.padding_side == "right"
    enc = tokenizer([e["question"] for e in examples], [e["context"] for e in examples],
                    truncation="only_second" if pad_right else "only_first", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    features = []
    for i in range(len(enc["input_ids"])):
        ex_idx = enc["overflow_to_sample_mapping"][i]
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        feat = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
        if "token_type_ids" in enc:
            feat["token_type_ids"] = enc["token_type_ids"][i]
        if train:
            ans = examples[ex_idx]["answers"]
            start_pos = end_pos = 0
            if ans["text"]:
                a_start = ans["answer_start"][0]
                a_end = a_start + len(ans["text"][0])
                ctx = [k for k, s in enumerate(seq_ids) if s == 1]
                if ctx and offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    start_pos = next(k for k in ctx if offsets[k][1] > a_start)
                    end_pos = next(k for k in reversed(ctx) if offsets[k][0] < a_end)
            feat.update(start_positions=start_pos, end_positions=end_pos)
        else:
            feat["example_index"] = ex_idx
            feat["offsets"] = [tuple(o) if s == 1 else None for o, s in zip(offsets, seq_ids)]
        features.append(feat)
    return features


@dataclass(frozen=True)
class SquadSpec:
    """What SQuAD-format data gives BERT and the extractive-QA task."""

    vocab_size: int                                  # the backbone's tokenizer
    num_classes: None                                # none: the answer is a span, not a class
    tokenizer: Any                                   # saved with the fine-tuned model
    eval_examples: Callable[[str], list[dict]]       # the questions of `val` / `test` (id, context, answers)
    eval_features: Callable[[str], list[dict]]       # their windows (example_index, offsets), by feature_index
    split_info: Callable[[], dict]                   # how the data was split (results.json)


Dataset = Literal["squad", "drcd", "xquad_en", "xquad_zh"]


class SquadDataModule(TokenizedDataModule):
    """SQuAD-format extractive QA with the backbone's own fast tokenizer and dynamic padding."""

    def __init__(self, backbone: str = "minilm", dataset: Dataset = "squad", data_dir: str | None = None,
                 train_file: str | None = None, dev_file: str | None = None,
                 max_length: Annotated[int, AtLeastOne] = 256, stride: Annotated[int, NonNegative] = 64,
                 batch_size: Annotated[int, AtLeastOne] = 16, eval_batch_size: Annotated[int, AtLeastOne] = 64,
                 max_train_examples: Annotated[int, AtLeastOne] | None = None,
                 max_val_examples: Annotated[int, AtLeastOne] | None = None,
                 max_test_examples: Annotated[int, AtLeastOne] | None = None, split: tuple = (0.8, 0.1, 0.1),
                 seed: int = 0) -> None:
        super().__init__()
        problems = self.config_problems({"max_length": max_length, "stride": stride})
        if problems:
            raise LeedlError("task.data." + "; ".join(problems))
        self.backbone, self.dataset, self.data_dir = backbone, dataset, data_dir
        self.train_file, self.dev_file = train_file, dev_file
        self.max_length, self.stride = int(max_length), int(stride)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.limits = {"train": max_train_examples, "val": max_val_examples, "test": max_test_examples}
        self.split, self.seed = tuple(split), seed
        self.tokenizer = None
        self.examples: dict[str, list[dict]] = {}
        self.features: dict[str, list[dict]] = {}
        self.split_info: dict = {}

    # ---- loading -----------------------------------------------------------------------------
    def _files(self) -> tuple[Path | None, Path]:
        if self.dev_file:
            dev = Path(self.dev_file).expanduser()
            if not dev.is_file():
                raise LeedlError(f"task.data.dev_file={self.dev_file} does not exist")
        else:
            dev = dataset_file(self.dataset, self.data_dir)
        train = None
        if self.train_file:
            train = Path(self.train_file).expanduser()
            if not train.is_file():
                raise LeedlError(f"task.data.train_file={self.train_file} does not exist")
        elif not self.dev_file and self.dataset in DATASETS:
            folder_name, _, train_names = DATASETS[self.dataset]
            train = _first_existing(data_path(self.data_dir, folder_name), train_names)
        return train, dev

    def _limit(self, split: str, examples: list[dict]) -> list[dict]:
        limit = self.limits[split]
        if limit and len(examples) > int(limit):
            order = list(range(len(examples)))
            random.Random(SPLIT_SEED).shuffle(order)
            examples = [examples[i] for i in sorted(order[: int(limit)])]
        return examples

    def setup(self, stage: str | None = None) -> None:
        if self.examples:
            return
        self.tokenizer = load_pretrained_tokenizer(self.backbone)
        train_path, dev_path = self._files()
        dev_articles = read_squad(dev_path)
        if train_path is None:
            train_a, val_a, test_a = split_articles(dev_articles, self.split)
            how = f"no training file: {dev_path.name} split by article (seed {SPLIT_SEED}) into train/val/test"
        else:
            train_all = read_squad(train_path)
            train_a, val_a, _ = split_articles(train_all, (1 - self.split[1], self.split[1], 0.0))
            test_a = dev_articles
            how = f"train/val = {train_path.name} split by article, test = {dev_path.name}"
        articles = {"train": train_a, "val": val_a, "test": test_a}
        for split, arts in articles.items():
            self.examples[split] = self._limit(split, examples_of(arts))
        self.features["train"] = tokenize_examples(self.tokenizer, self.examples["train"], self.max_length,
                                                   self.stride, train=True)
        for split in ("val", "test"):
            self.features[split] = tokenize_examples(self.tokenizer, self.examples[split], self.max_length,
                                                     self.stride, train=False)
        self.split_info = {
            "how": how, "dataset": self.dataset if not self.dev_file else str(dev_path),
            **{f"{s}_articles": [a.get("title", "") for a in arts] for s, arts in articles.items()},
            **{f"{s}_questions": len(self.examples[s]) for s in articles},
            **{f"{s}_windows": len(self.features[s]) for s in articles},
            "max_length": self.max_length, "stride": self.stride,
        }
        log.info("%s; questions %s", how, {s: len(self.examples[s]) for s in articles})

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        max_length, stride = options.get("max_length"), options.get("stride")
        if isinstance(max_length, int) and isinstance(stride, int) and stride >= max_length // 2:
            return [f"stride={stride}: expected well below max_length={max_length} (under {max_length // 2}: it is "
                    f"the overlap between passage windows)"]
        return []

    def _collator(self):
        # evaluation windows carry their passage offsets: the task looks them up by feature_index
        return PadCollator(self.tokenizer.pad_token_id, skip=("offsets",))

    def provides(self) -> SquadSpec:
        self.setup()
        return SquadSpec(vocab_size=len(self.tokenizer), num_classes=None, tokenizer=self.tokenizer,
                         eval_examples=self.eval_examples, eval_features=self.eval_features,
                         split_info=self.how_split)

    def eval_examples(self, split: str) -> list[dict]:
        return self.examples[split]

    def eval_features(self, split: str) -> list[dict]:
        return self.features[split]

    def how_split(self) -> dict:
        """How the data was split: files, sizes (results.json `data_split`)."""
        return self.split_info
