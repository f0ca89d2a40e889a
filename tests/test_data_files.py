"""A damaged data file is named (which file, what is wrong, how to get a good copy); checksums are verified."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leedl_cli.data.files import reading
from leedl_cli.errors import CorruptDataError

REPO = Path(__file__).resolve().parents[1]


def test_a_cut_gzip_file_is_named(tmp_path):
    path = tmp_path / "train.en.gz"
    whole = gzip.compress(" ".join(f"sentence {i}" for i in range(5000)).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptDataError) as info:
        with reading(path, "Multi30k", "github.com/multi30k/dataset"):
            gzip.open(path).read()
    assert str(path) in str(info.value) and "ends too early" in str(info.value)
    assert "github.com/multi30k/dataset" in str(info.value)


def test_a_json_file_that_ends_mid_file_is_named(tmp_path):
    path = tmp_path / "dev-v1.1.json"
    path.write_text(json.dumps({"data": [{"title": "x", "paragraphs": []}]})[:25])
    with pytest.raises(CorruptDataError) as info:
        with reading(path, "SQuAD", "rajpurkar.github.io/SQuAD-explorer"):
            json.loads(path.read_text())
    assert str(path) in str(info.value) and "not valid JSON" in str(info.value)


def test_an_image_that_does_not_decode_is_named(tmp_path):
    from PIL import Image

    path = tmp_path / "00000001.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptDataError) as info:
        with reading(path, "MNIST-M", "the DANN paper's project page"):
            Image.open(path).load()
    assert str(path) in str(info.value)


def test_data_check_verify_names_a_file_that_differs(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the published file")
    env = dict(os.environ, LEEDL_DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "data", "check", "--verify"], capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 1
    assert "DIFFERS  mnist/t10k-labels-idx1-ubyte.gz" in out.stdout and "1 file(s) checked, 1 differ." in out.stdout


def test_the_loaders_name_their_damaged_files(tmp_path):
    from leedl_cli.data.squad import read_squad
    from leedl_cli.data.ud import read_conllu

    conllu = tmp_path / "en_ewt-ud-test.conllu.gz"
    whole = gzip.compress("".join(f"{i}\tword{i}\tw{i}\tNOUN\t_\t_\t0\t_\t_\t_\n" for i in range(1, 3000)).encode())
    conllu.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptDataError, match="Universal Dependencies: cannot read .*en_ewt-ud-test.conllu.gz"):
        read_conllu(conllu)
    squad = tmp_path / "dev-v1.1.json"
    squad.write_text('{"data": [')
    with pytest.raises(CorruptDataError, match="not valid JSON"):
        read_squad(squad)


def test_an_unknown_upos_tag_is_a_data_error_naming_the_file_and_line(tmp_path):
    from leedl_cli.data.ud import read_conllu

    conllu = tmp_path / "en_ewt-ud-train.conllu"
    conllu.write_text("# sent_id = a\n1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
                      "# sent_id = b\n1\tRun\trun\tVERBB\t_\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(CorruptDataError, match=r"en_ewt-ud-train.conllu, line 6: unknown UPOS tag 'VERBB'"):
        read_conllu(conllu)
