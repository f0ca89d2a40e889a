"""The data sets leedl knows: where each is looked for and how to get it (`leedl data list|check`).

Light on purpose (no torch): the CLI reads it. Each loader uses the same folder name under the data dir.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataSet:
    name: str            # folder under the data dir
    description: str
    files: list[str] = field(default_factory=list)   # what must be there (glob patterns allowed)
    source: str = ""     # the canonical place to get it
    tasks: list[str] = field(default_factory=list)
    bundled: bool = False   # ships inside a PyPI package: nothing to fetch


DATASETS: list[DataSet] = [
    DataSet("digits", "scikit-learn's 8x8 digits (1,797 images)", [], "bundled with scikit-learn", ["digits"], True),
    DataSet("mnist", "MNIST handwritten digits, the four IDX .gz files",
            ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
            "torchvision.datasets.MNIST(download=True) / yann.lecun.com/exdb/mnist", ["mnist", "dann", "label_shift"]),
    DataSet("fashion-mnist", "Fashion-MNIST (Zalando clothes), the four IDX .gz files",
            ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
            "torchvision.datasets.FashionMNIST(download=True) / github.com/zalandoresearch/fashion-mnist (data/fashion)",
            ["fashion_mnist"]),
    DataSet("go-sgf", "Go game records (SGF): KGS high-dan archives kgs/*.tar.gz (or task.data.sgf_dir=your folder)",
            ["kgs/*.tar.gz"], "u-go.net/gamerecords (the KGS archives, .tar.gz)", ["go_policy"]),
    DataSet("mnist-m", "MNIST-M test split (zip of PNGs + labels)", ["mnist_m_test.zip"],
            "the DANN paper's project page (Ganin & Lempitsky 2015)", ["dann"]),
    DataSet("bsds500", "BSDS500 training images (to build MNIST-M training data)", ["train/*.jpg"],
            "Berkeley Segmentation Dataset BSDS500", ["dann"]),
    DataSet("squad", "SQuAD v1.1 (dev mirrored; train-v1.1.json if you have it)", ["dev-v1.1.json*"],
            "rajpurkar.github.io/SQuAD-explorer (HF datasets `squad`)", ["bert_squad", "text_completion"]),
    DataSet("xquad", "XQuAD English and Chinese", ["xquad.en.json", "xquad.zh.json"],
            "github.com/google-deepmind/xquad (HF datasets `xquad`)", ["bert_squad"]),
    DataSet("drcd", "DRCD (Traditional Chinese reading comprehension) dev/test", ["DRCD_dev.json", "DRCD_test.json"],
            "github.com/DRCKnowledgeTeam/DRCD", ["bert_squad"]),
    DataSet("sst2", "GLUE SST-2 binary sentiment", ["train.tsv", "dev.tsv"], "GLUE benchmark (HF datasets glue/sst2)",
            ["sentiment", "text_completion"]),
    DataSet("ud-english-ewt", "Universal Dependencies English EWT (CoNLL-U)",
            ["en_ewt-ud-train.conllu.gz", "en_ewt-ud-dev.conllu.gz", "en_ewt-ud-test.conllu.gz"],
            "github.com/UniversalDependencies/UD_English-EWT", ["pos_tagging"]),
    DataSet("multi30k", "Multi30k task 1 English-German", ["train.en.gz", "train.de.gz", "val.en.gz", "val.de.gz"],
            "github.com/multi30k/dataset", ["translation"]),
    DataSet("tatoeba-cmn-eng", "Tatoeba English-Chinese pairs", ["cmn.txt.gz"], "manythings.org/anki", ["translation"]),
    DataSet("cifar10", "CIFAR-10 (python version)", ["cifar-10-batches-py/data_batch_1"],
            "torchvision.datasets.CIFAR10(download=True)", ["cifar10"]),
]


def by_name() -> dict[str, DataSet]:
    return {d.name: d for d in DATASETS}
