"""Sequence-level knowledge distillation (Kim & Rush 2016) for `task.data.distill_from=<run dir>`.

A trained autoregressive translation run (the teacher) translates the training sources with beam search; the
student (the non-autoregressive model, ch. 4 section 4.5.2) then learns those outputs instead of the references.
The teacher's translations are simpler and more consistent than human references (one way of saying each thing),
which is what a decoder that chooses every position independently needs.

The teacher is decoded through leedl_cli.translate's Translator (its own vocabularies, length limits and
checkpoint: the best validation-BLEU one), `beam_size` hypotheses per sentence. The outputs are cached in
paths.cache_dir("distill"), keyed by the checkpoint (path, size, modification time), the beam and the sources
themselves, and written atomically: the second run of a sweep reads them back.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from leedl_cli.atomic import write_json_atomic
from leedl_cli.errors import CorruptDataError
from leedl_cli.paths import cache_dir

log = logging.getLogger(__name__)
CHUNK = 2048          # sentences per progress line


def distillation_key(checkpoint, beam_size: int, sources: list[str]) -> str:
    stat = checkpoint.stat()
    digest = hashlib.sha256("\n".join(sources).encode("utf-8")).hexdigest()
    fields = {"checkpoint": str(checkpoint.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
              "beam_size": int(beam_size), "sources": digest, "n": len(sources)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def distilled_targets(teacher: str, sources: list[str], beam_size: int = 5) -> list[str]:
    """The teacher run's beam-search translation of each source sentence (cached)."""
    from leedl_cli.translate import Translator

    translator = Translator.from_run(teacher)
    path = cache_dir("distill") / f"{distillation_key(translator.checkpoint, beam_size, sources)}.json"
    if path.is_file():
        try:
            targets = json.loads(path.read_text(encoding="utf-8"))["targets"]
        except (OSError, ValueError, KeyError) as err:
            raise CorruptDataError(f"{path}: a damaged distillation cache ({err}); delete it to decode again") from err
        if len(targets) == len(sources):
            log.info("distillation: %d teacher translations read from %s", len(targets), path)
            return targets
    start, targets = time.perf_counter(), []
    for k in range(0, len(sources), CHUNK):
        targets += translator.translate(sources[k:k + CHUNK], strategy="beam", beam_size=beam_size)
        log.info("distillation: %d / %d training sources translated by %s (beam %d, %.0f s)", len(targets),
                 len(sources), translator.checkpoint, beam_size, time.perf_counter() - start)
    write_json_atomic(path, {"teacher": str(translator.checkpoint), "beam_size": int(beam_size), "targets": targets})
    return targets
