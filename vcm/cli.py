"""Command line: ``vcm run CONFIG [key=value ...]``, ``vcm train CONFIG``, ``vcm report RUN_DIR``,
``vcm export RUN_DIR``, ``vcm convert-weights CODEC IN OUT``, ``vcm list``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vcm", description="coding-for-machines evaluation")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action="version", version=f"vcm {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run an experiment config, then write its report")
    r.add_argument("config")
    r.add_argument("overrides", nargs="*", help="config overrides, e.g. dataset.limit=5")
    r.add_argument("--no-report", action="store_true", help="only compute results")
    r.add_argument("--no-progress", action="store_true")
    rep = sub.add_parser("report", help="write the report of a run folder")
    rep.add_argument("run_dir")
    rep.add_argument("--anchor", help="series BD-rates are computed against")
    rep.add_argument("--method", choices=["pchip", "akima", "cubic"], help="headline BD interpolation")
    rep.add_argument("--fit", choices=["envelope", "curve_fit"], help="what a non-monotonic curve becomes")
    rep.add_argument("--no-progress", action="store_true")
    ex = sub.add_parser("export", help="write a run's per-image records as CSV")
    ex.add_argument("run_dir")
    ex.add_argument("-o", "--output", help="CSV path (default RUN_DIR/records.csv, or RUN_DIR/ctc.csv)")
    ex.add_argument("--format", choices=["records", "ctc"], default="records",
                    help="records: one row per image and point; ctc: one per rate point and class (MPEG's layout)")
    t = sub.add_parser("train", help="train a learned codec's rate points (resumes where it stopped)")
    t.add_argument("config")
    t.add_argument("overrides", nargs="*", help="config overrides, e.g. rates.0.steps=100")
    t.add_argument("--rate", action="append", help="train only this rate point (repeatable)")
    t.add_argument("--until", type=int, help="stop each rate point at this step (resumable)")
    t.add_argument("--no-progress", action="store_true")
    cw = sub.add_parser("convert-weights", help="write a vcm checkpoint of an official codec checkpoint")
    cw.add_argument("codec", help="registered codec, e.g. segpic, gitssic, mcm")
    cw.add_argument("input", help="checkpoint written by the codec's official code")
    cw.add_argument("output", help="vcm checkpoint to write (what checkpoint: reads)")
    cw.add_argument("overrides", nargs="*", help="config fields no shape shows, e.g. enc_heads=12 dec_heads=16 (MCM)")
    sub.add_parser("list", help="list registered components")
    return p


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("vcm")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [e for e in extra if "=" in e and not e.startswith("-")]
    args.debug = args.debug or "--debug" in extra  # also accepted after the subcommand
    extra = [e for e in extra if e != "--debug"]
    if args.cmd not in ("run", "train", "convert-weights") and overrides or len(overrides) != len(extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd in ("run", "train", "convert-weights"):
        args.overrides += overrides  # overrides may also follow the flags
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*")  # compressai import noise
    try:
        return {"run": _run, "report": _report, "train": _train, "list": _list, "export": _export,
                "convert-weights": _convert_weights}[args.cmd](args)
    except KeyboardInterrupt:
        print(f"vcm {args.cmd}: interrupted; finished work is saved, the same command resumes it", file=sys.stderr)
        return 130
    except Exception as e:  # untrusted input: a clear line, exit code 2
        if args.debug:
            raise
        print(f"vcm {args.cmd}: error: {_describe(e)} (--debug shows the traceback)", file=sys.stderr)
        return 2


def _describe(e: BaseException) -> str:
    """The message, with the exception's kind when the message alone is not self-explaining."""
    text = str(e) or type(e).__name__
    if isinstance(e, (KeyError, ValueError, FileNotFoundError, ImportError)):
        return text
    return f"{type(e).__name__}: {text}"


def _run(args: argparse.Namespace) -> int:
    from vcm.codecs.container import decode_budget, max_pixels
    from vcm.config import load_config
    from vcm.pipeline.runner import is_sequence, prepare, run

    t = time.perf_counter()
    max_pixels(), decode_budget()  # a bad VCM_MAX_PIXELS / VCM_MAX_DECODE_BYTES fails before any image
    exp = prepare(load_config(args.config, args.overrides), base_dir=Path(args.config).resolve().parent.parent)
    anchor = exp.config.report.anchor
    if not args.no_report:  # a bad anchor or reference name fails before any image is coded
        from vcm.report.references import check_series

        check_series(exp.config.report.references, exp.plan.series(), exp.plan.resolve(anchor) if anchor else None,
                     "report.anchor")
    n, unit = len(exp.dataset.ids()), "clips" if is_sequence(exp.dataset) else "images"
    trackers = f"; trackers: {', '.join(t.label for t in exp.plan.trackers)}" if exp.plan.trackers else ""
    print(f"{exp.config.name}: {n} {unit} x {len(exp.plan.points)} points "
          f"({len(exp.plan.series())} series), tasks: {', '.join(t.label for t in exp.plan.tasks) or 'none (image quality only)'}{trackers}")
    summary = run(exp, progress=not args.no_progress)
    run_dir = summary.run_dir
    print(f"results: {run_dir / 'results.sqlite'}: {summary.computed} items computed, "
          f"{summary.skipped} already done ({time.perf_counter() - t:.1f} s)")
    if not args.no_report:
        from vcm.report.build import report_is_current

        if summary.computed == 0 and report_is_current(run_dir):
            print((run_dir / "report" / "summary.txt").read_text(), end="")
            print(f"report: {run_dir / 'report' / 'report.html'} (up to date: nothing new was computed)")
            return 0
        args.run_dir, args.anchor, args.method, args.fit = str(run_dir), None, None, None
        return _report(args)
    return 0


def _train(args: argparse.Namespace) -> int:
    from vcm.train.config import load_train_config
    from vcm.train.loop import train

    cfg = load_train_config(args.config, args.overrides)
    for name, path in train(cfg, only=args.rate, progress=not args.no_progress, until=args.until).items():
        print(f"{name}: {path or 'not finished (run again to resume)'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from vcm.report.build import make_report

    files = make_report(args.run_dir, anchor=args.anchor, method=args.method, progress=not args.no_progress,
                        fit=args.fit)
    print(files["txt"].read_text(), end="")
    print(f"report: {files['html']} (every table: {files['md'].name})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from vcm.report.export import export_ctc, export_records

    path, n = (export_ctc if args.format == "ctc" else export_records)(args.run_dir, args.output)
    print(f"{n} {'rows' if args.format == 'ctc' else 'records'}: {path}")
    return 0


def _convert_weights(args: argparse.Namespace) -> int:
    from vcm.codecs.official import convert_file

    path, out = convert_file(args.codec, args.input, args.output, args.overrides)
    n = sum(v.numel() for v in out.state_dict.values())
    print(f"{args.input}: official {args.codec} weights, {len(out.state_dict)} tensors, {n / 1e6:.2f} M values")
    for note in out.notes:
        print(f"  {note}")
    print(f"wrote {path} (config: {out.config})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from vcm.codecs import CODECS
    from vcm.data import DATASETS
    from vcm.masks import MASKS
    from vcm.tasks import TASKS
    from vcm.tracking import TRACKERS

    for reg in (DATASETS, MASKS, CODECS, TASKS, TRACKERS):
        print(f"{reg.kind}s:")
        for name in reg.names():
            print(f"  {name}: {_signature(reg, name)}")
    return 0


NEEDS = {"tflite": "ai_edge_litert", "sam": "segment_anything", "mmpose": "mmpose", "metrics": "lpips", "video": "av",
         "bytetrack": "supervision", "kwcoco": "kwcoco",
         "detectron2": "detectron2", "detectron2_keypoints": "detectron2", "maskrcnn": "detectron2"}


def _signature(reg: Any, name: str) -> str:
    """'param=default, ...' of a component, or what it needs when its library is missing."""
    import inspect

    import importlib.util

    lib = NEEDS.get(name) or NEEDS.get(reg.extra(name) or "")
    if lib and importlib.util.find_spec(lib) is None:
        return f"not available: needs the {lib} package (see README, Optional integrations)"
    try:
        factory = reg.get(name)
    except ImportError as e:
        return f"not available: {e}"
    params = inspect.signature(factory).parameters.values()
    return ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params
                     if p.name not in ("self", "device") and p.kind is p.KEYWORD_ONLY) or "(no parameters)"


if __name__ == "__main__":
    raise SystemExit(main())
