"""The `leedl` command: run / list / report / data / translate. Thin; imports no torch or Lightning except for `run`."""
from __future__ import annotations

import sys
from pathlib import Path

GROUPS = ["task", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "budget", "decoding",
          "domain_shift", "debug"]

USAGE = """leedl — the LeeDL tutorial's experiments, one command per figure or table

usage:
  leedl run [OVERRIDE ...]          one run (Hydra overrides: task=mnist model=mlp optimizer.lr=1e-3 ...)
  leedl run -m [OVERRIDE ...]       a sweep (Hydra multirun): leedl run -m optimizer=adagrad,rmsprop seed=0,1,2
  leedl run experiment=NAME         a preset that reproduces one figure/table of the book
  leedl run resume=RUN_DIR|auto     continue an interrupted run from its last checkpoint, in its directory
  leedl run -m ... skip_done=true   re-run a sweep: jobs that already ended ok are skipped, the rest run
  leedl run --help | --cfg job | --info    Hydra's own help, composed config, and config search path
  leedl report PATH [--metric M] [--x PARAM] [--curves] [--out DIR]   table (mean ± std over seeds), report.md/.csv, plots
  leedl list [GROUP]                what each config group offers ({groups})
  leedl data [list|check] [--task T] [--verify]  where each data set is looked for, whether it is there
                                    (and intact); check exits 1 when one is missing
  leedl translate RUN [SENTENCE ...]   translate with a task=translation run, decoding as its test did (--decode, --beam-size, ...)
  leedl book plan|run|report        the whole book: what each preset measures and costs, run what is not
                                    measured yet, the results as pages (docs/results/); leedl book --help

Outputs go to outputs/runs/<date>/<time>_<id> (single runs) and outputs/multirun/<date>/<time>_<id>/<job>.
Set LEEDL_DATA_DIR to the folder that holds your data sets; LEEDL_OFFLINE=1 forbids downloads.
""".format(groups=", ".join(GROUPS))


def _die(message: str, code: int = 2) -> None:
    print(f"leedl: error: {message}", file=sys.stderr)
    sys.exit(code)


def describe(path: Path) -> str:
    """The one-line description of a config option: the first header comment that is not a Hydra directive."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.startswith("#"):
            if line:
                break
            continue
        text = line.lstrip("#").strip()
        if text and not text.startswith("@package"):
            name = path.stem
            return text[len(name):].lstrip(" —-:") if text.startswith(name) else text
    return ""


def cmd_list(args: list[str]) -> int:
    from leedl_cli.paths import conf_dir

    groups = args or GROUPS
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        _die(f"unknown config group {unknown[0]!r}; valid groups: {', '.join(GROUPS)}")
    root = conf_dir()
    for group in groups:
        print(f"{group}:")
        paths = sorted((root / group).glob("*.yaml"))
        width = max([24, *(len(p.stem) for p in paths)])
        for path in paths:
            print(f"  {path.stem:<{width}} {describe(path)}")
    return 0


def cmd_data(args: list[str]) -> int:
    """`leedl data list|check [--task T] [--verify]`: check exits 1 when a data set (of task T) is missing."""
    from leedl_cli.data.registry import DATASETS
    from leedl_cli.paths import default_data_dir

    verify = "--verify" in args
    args = [a for a in args if a != "--verify"]
    task = None
    if "--task" in args:
        i = args.index("--task")
        if i + 1 >= len(args):
            _die("--task needs a task name, e.g. leedl data check --task mnist")
        task = args[i + 1]
        args = args[:i] + args[i + 2:]
        known = sorted({t for ds in DATASETS for t in ds.tasks})
        if task not in known:
            _die(f"--task {task}: no data set is known for that task; tasks with data sets: {', '.join(known)}")
    action = args[0] if args else "list"
    if action not in ("list", "check") or len(args) > 1:
        _die(f"unknown data action {' '.join(args)!r}; valid actions: list, check [--task T] [--verify]")
    root = default_data_dir()
    print(f"data dir: {root}  (set LEEDL_DATA_DIR or data_dir=... to change it)")
    missing = 0
    for ds in DATASETS:
        if task is not None and task not in ds.tasks:
            continue
        folder = root / ds.name
        if ds.bundled:
            state = "bundled"
        else:
            present = all(any(folder.glob(pattern)) for pattern in ds.files)
            state = "ok" if present else "missing"
            missing += not present
        line = f"  {ds.name:<16} {state:<8} {folder if not ds.bundled else '(in a PyPI package)'}"
        print(line)
        if action == "check" or state != "ok":
            print(f"  {'':<16} {ds.description}; tasks: {', '.join(ds.tasks)}; get it from: {ds.source}")
    if action == "check" and missing:
        print(f"{missing} data set(s) missing; tasks that need them will stop with an error naming the path.")
    code = verify_checksums(root) if verify else 0
    return 1 if action == "check" and missing else code


def verify_checksums(root: Path) -> int:
    """Compare every known file that is there with its published checksum; 1 when one differs."""
    from leedl_cli.data.checksums import SHA256_PREFIX
    from leedl_cli.data.files import sha256

    bad = checked = 0
    print("checksums (SHA-256) of the known files:")
    for name, expected in SHA256_PREFIX.items():
        path = root / name
        if not path.is_file():
            continue
        checked += 1
        ok = sha256(path).startswith(expected)
        bad += not ok
        print(f"  {'ok' if ok else 'DIFFERS':<8} {name}" + ("" if ok else
              f"  (expected {expected}...: a damaged or different copy; get it again from its source)"))
    print(f"{checked} file(s) checked, {bad} differ." if checked else "none of the known files is there.")
    return 1 if bad else 0


def _output_root(args: list[str]) -> str:
    import os

    for a in args:
        if a.startswith("output_root="):
            return a.partition("=")[2]
    return os.environ.get("LEEDL_OUTPUT_DIR", "outputs")


def resolve_resume(args: list[str]) -> list[str]:
    """`resume=DIR|auto` (single runs): the interrupted run's own overrides + the user's, in its directory."""
    from leedl_cli.errors import LeedlError
    from leedl_cli.resume import find_unfinished, resume_overrides

    asked = [a.partition("=")[2] for a in args if a.lstrip("+").startswith("resume=")]
    value = asked[-1] if asked else None
    if value in (None, "", "null"):
        return args
    if any(a in ("-m", "--multirun") for a in args):
        _die("resume= continues one run; to finish a sweep, run the same sweep command again with skip_done=true "
             "(jobs that ended ok are skipped, the others run again)")
    rest = [a for a in args if not a.lstrip("+").startswith("resume=")]
    if value == "auto":
        root = _output_root(rest)
        found = find_unfinished(root, rest)
        if found is None:
            print(f"leedl run: resume=auto: no unfinished run with these overrides under {root}/; starting a new run",
                  file=sys.stderr)
            return rest
        print(f"leedl run: resume=auto: continuing {found}", file=sys.stderr)
        value = str(found)
    try:
        return resume_overrides(Path(value).resolve(), rest)
    except LeedlError as err:
        _die(str(err))
    return args


def cmd_run(args: list[str]) -> int:
    import time

    args = resolve_resume(args)
    from leedl_cli.preflight import UsageError, preflight

    try:   # every value checked before Hydra creates a run directory
        base = preflight(args)
    except UsageError as err:
        lines = str(err).splitlines()
        _die(lines[0] if len(lines) == 1 else "bad config:\n  " + "\n  ".join(lines))
    from leedl_cli.errors import LeedlError
    from leedl_cli.report.outcome import end_of_run, fix_output_dir, runs_of_this_command
    from leedl_cli.rundirs import claim_directories

    multirun = any(a in ("-m", "--multirun") for a in args) or (base is not None and
                                                               "MULTIRUN" in str(base.hydra.get("mode")))
    args, where = fix_output_dir(args, base, multirun)
    try:   # a directory that holds a run is never written by another run
        args = claim_directories(args)
    except LeedlError as err:
        _die(str(err))
    from leedl_cli import run

    sys.argv = ["leedl run", *args]
    started = time.time()
    run.main()   # the exit status and the numbers printed come from the records the runs wrote
    runs = runs_of_this_command(where, started, _output_root(args))
    if base is None and not runs:   # Hydra printed help, the config, ...: nothing ran
        return 0
    code, out, err = end_of_run(runs, multirun, where)
    for line in out:
        print(line)
    for line in err:
        print(line, file=sys.stderr)
    return code


TRANSLATE_USAGE = """usage: leedl translate RUN [SENTENCE ...] [--decode greedy|beam|sampling] [--beam-size N]
                       [--length-penalty A] [--temperature T] [--top-k K] [--top-p P]
                       [--max-len-a A] [--max-len-b B] [--seed S] [--iterations K]
  RUN: a task=translation run directory (its best validation-BLEU checkpoint) or a .ckpt inside one.
  Decodes as the run's test did (its translation_model.json); an option given here changes that one setting.
  A model=nat_transformer run decodes every position at once: --iterations K (1 = one pass, more = mask-predict)
  is its only option.
  Without SENTENCE, one sentence per line is read from stdin; one translation per line is printed."""


def cmd_translate(args: list[str]) -> int:
    import argparse

    if not args or args[0] in ("-h", "--help"):
        print(TRANSLATE_USAGE)
        return 0 if args else 2
    parser = argparse.ArgumentParser(prog="leedl translate", add_help=False)
    parser.add_argument("run")
    parser.add_argument("sentences", nargs="*")
    parser.add_argument("--decode", dest="strategy")      # the values are checked with the other settings
    for flag, kind in (("--beam-size", int), ("--length-penalty", float), ("--temperature", float),
                       ("--top-k", int), ("--top-p", float), ("--max-len-a", float), ("--max-len-b", int),
                       ("--seed", int), ("--iterations", int)):
        parser.add_argument(flag, type=kind)
    try:
        opts = parser.parse_args(args)
    except SystemExit:
        _die(f"bad arguments: {' '.join(args)}\n{TRANSLATE_USAGE}")
    if not Path(opts.run).exists():
        _die(f"{opts.run}: no such run directory or checkpoint (give a task=translation run's directory)")
    sentences = opts.sentences or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    changes = {k: v for k, v in vars(opts).items() if k not in ("run", "sentences", "iterations")}
    if opts.iterations is not None:
        changes["nat_iterations"] = opts.iterations
    from leedl_cli.errors import LeedlError
    from leedl_cli.translate import translate

    try:
        out = translate(opts.run, sentences, **changes)
    except LeedlError as err:
        _die(str(err))
    for line in out:
        print(line)
    return 0


def cmd_report(args: list[str]) -> int:
    from leedl_cli.report import report_main

    return report_main(args)


def cmd_book(args: list[str]) -> int:
    from leedl_cli.book import book_main

    return book_main(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "data": cmd_data, "translate": cmd_translate,
            "book": cmd_book}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("-h", "--help", "help") and argv[0] not in COMMANDS:
        _die(f"unknown command {argv[0]!r}; valid commands: {', '.join(COMMANDS)} (leedl --help)")
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0
        return COMMANDS[argv[0]](argv[1:]) or 0
    except BrokenPipeError:   # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
