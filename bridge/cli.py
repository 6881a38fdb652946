"""Command line: argument parsing, printing, exit codes. Imports only the standard library at
import time; each command imports what it needs when it runs (``bridge --help`` stays fast)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from bridge import __version__
from bridge.errors import EXIT_INCONCLUSIVE, EXIT_PARITY, EXIT_PASS, EXIT_USAGE, BridgeError, exception_summary

EXIT_INTERNAL = 8
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

EPILOG = """exit codes:
  0  parity holds            1  parity fails (report names the output)
  2  bad usage or input      3  inconclusive (vacuous or nondeterministic reference)
  4  environment (missing package, no GPU for --device cuda)
  5  conversion failed       6  refused as unsafe      7  crashed or timed out
  8  internal error (a bug in bridge: please report it with --debug output)
"""

STATUS_EXIT = {"pass": EXIT_PASS, "fail": EXIT_PARITY, "inconclusive": EXIT_INCONCLUSIVE}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # no abbreviations: --input must never mean --inputs
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse's own exit code is 2 as well; keep one line plus usage
        self.print_usage(sys.stderr)
        sys.stderr.write(f"bridge: usage: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-range", action="append", default=[], metavar="NAME=LOW:HIGH",
                   help="value range for an input (integers: LOW inclusive, HIGH exclusive)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a dynamic axis in generated inputs (default 2; the sweep adds 1 and 2*SIZE+1)")
    p.add_argument("--input-kind", action="append", default=[], metavar="NAME=KIND",
                   help="what an input's values mean: values, index (ids into a table), mask (0/1 attention "
                        "mask, every row attends somewhere) or positions (0..n-1); default from the name "
                        "(attention_mask, input_ids, position_ids, ...), always listed in the report")
    p.add_argument("--dim-min", action="append", default=[], metavar="NAME=SIZE",
                   help="smallest size the sweep may give a dynamic axis (e.g. samples=400 for a model whose first "
                        "convolution needs that many)")
    p.add_argument("--dim-max", action="append", default=[], metavar="NAME=SIZE",
                   help="largest size the sweep may give a dynamic axis")
    p.add_argument("--weights", metavar="FILE", help="PyTorch state_dict (.pt, loaded with weights_only=True) or .safetensors")
    p.add_argument("--framework", choices=["torch", "tensorflow"], help="expected framework of SOURCE")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="intra-op threads for every runtime, set equal on all sides (default: CPU count)")
    p.add_argument("--trust-code", action="store_true",
                   help="allow model files that run code when loaded (Keras Lambda layers, SavedModel file ops)")
    p.add_argument("--atol", nargs="+", default=[], metavar="TOL",
                   help="absolute tolerance: a number for every output and/or NAME:TOL per output")
    p.add_argument("--rtol", nargs="+", default=[], metavar="TOL", help="relative tolerance, same forms as --atol")
    p.add_argument("--scale-atol", nargs="+", default=[], metavar="TOL",
                   help="extra atol as a fraction of the output's largest |value| (CUDA default 2e-3), same forms")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON (schema in docs/reports.md)")
    p.add_argument("--junit", metavar="PATH", help="write a JUnit XML report (one testcase per output, case and device)")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown summary (CI step summary, PR comment)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (the report still prints)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="stop loading, conversion and execution after this long (default 3600; 0: none)")
    p.add_argument("--memory-limit", type=float, metavar="GB",
                   help="stop the worker past this resident memory (default: 80%% of the machine's memory)")
    p.add_argument("--no-contain", action="store_true",
                   help="run in this process instead of a contained worker process (debugging)")


def _target_and_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", nargs="?", help="a bundle directory or a .onnx file")
    p.add_argument("--source", metavar="SOURCE", help="the native model to compare against (fresh inputs)")
    p.add_argument("--device", action="append", choices=["cpu", "cuda"], help="ONNX Runtime device (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="seed of fresh inputs with --source (default 1)")


def _runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ort-spinning", choices=["on", "off"], default="on",
                   help="ONNX Runtime's idle threads spin like torch's OpenMP threads do (default on)")
    p.add_argument("--tf32", action="store_true",
                   help="CUDA: keep TF32 math on (ORT's and cuDNN's default) instead of verifying in strict fp32")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bridge", allow_abbrev=False, description="Export PyTorch and TensorFlow/Keras models to ONNX and prove "
                     "the export: parity and latency against the native framework.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("export", help="export a native model to an ONNX bundle", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE",
                   help="file.py:factory, package.module:factory, model.keras, model.h5, SavedModel dir, program.pt2")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE_DIR", help="bundle directory to create")
    p.add_argument("--input", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                   help="model input, in forward() order; integer dims fixed, named dims dynamic")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "torchscript", "function", "frozen"],
                   help="auto (default): try each route (torch: dynamo then torchscript; tf2onnx: the function, then "
                        "the frozen graph) and keep the first artifact that passes; a pinned route never falls back")
    p.add_argument("--seed", type=int, default=0, help="seed of the golden inputs (default 0)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at BUNDLE_DIR")
    p.add_argument("--publish-failed", action="store_true",
                   help="publish the bundle at BUNDLE_DIR even when its verification fails or is inconclusive "
                        "(default: it is kept at BUNDLE_DIR.failed or BUNDLE_DIR.inconclusive)")
    p.add_argument("--optimize", default="none", metavar="LEVEL",
                   help="graph optimization saved into the bundle, verified like any export: none (default), "
                        "ort (ONNX Runtime's offline fusions), transformer (onnxruntime.transformers fusions, then ort)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="fp32 (default), or a graph derived from the verified fp32 export and verified again under "
                        "its own policy row: fp16, int8 (static with --calibrate, else dynamic MatMul/LSTM weights)")
    p.add_argument("--calibrate", metavar="FILE.npz",
                   help="real samples (one array per input) to calibrate --precision int8 on: static QDQ quantization")
    _common(p)

    p = sub.add_parser("verify", help="compare ONNX Runtime with the native model or the bundle's golden outputs",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _target_and_source(p)
    p.add_argument("--input", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                   help="input spec, overriding the bundle's or the source's (e.g. another dynamic axis)")
    p.add_argument("--samples", "--inputs", dest="inputs", metavar="FILE.npz",
                   help="real samples to verify on as well, one array per input (needs --source)")
    p.add_argument("--labels", metavar="FILE.npy", help="class labels of the --samples: accuracy on both sides")
    p.add_argument("--policy", metavar="FILE", help="tolerance policy file (.toml or .json)")
    p.add_argument("--allow-nonfinite", action="store_true", help="NaN/Inf pass when both sides agree on them")
    p.add_argument("--min-top1", type=float, metavar="FRACTION",
                   help="fail a classifier output whose argmax agrees on fewer rows (e.g. 1.0)")
    p.add_argument("--localize", metavar="DIR",
                   help="on a parity failure, find the first diverging node and write a reproduction to DIR")
    p.add_argument("--latency-runs", type=int, default=0, help="timed runs per side, 0 to skip (default 0)")
    _runtime(p)
    _common(p)

    p = sub.add_parser("bench", help="time the native model and ONNX Runtime with one method", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _target_and_source(p)
    p.add_argument("--input", action="append", default=[], metavar="NAME:DTYPE[DIMS]",
                   help="input spec, overriding the bundle's or the source's")
    p.add_argument("--latency-runs", type=int, default=100, help="timed runs per side (default 100)")
    _runtime(p)
    _common(p)

    from bridge.check import add_parser as add_check_parser  # stdlib-only at import

    add_check_parser(sub)

    p = sub.add_parser("inspect", help="show a bundle's or an ONNX file's inputs, outputs and provenance")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--json", metavar="PATH", help="write what is shown as JSON")
    p.add_argument("--debug", action="store_true")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the worker is stopped and what it was writing is removed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return {"export": cmd_export, "verify": cmd_verify, "bench": cmd_bench, "inspect": cmd_inspect,
                "check": cmd_check}[args.command](args)
    except BridgeError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        sys.stderr.write(f"bridge: {exc.category}: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"  hint: {exc.hint}\n")
        _error_report(args, exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            sys.stderr.write("bridge: interrupted: stopped by SIGTERM\n")
            return EXIT_TERMINATED
        sys.stderr.write("bridge: interrupted: stopped by SIGINT (Ctrl-C)\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in bridge or an unforeseen library failure (here or in the worker)
        if getattr(args, "debug", False):
            traceback.print_exc()
        sys.stderr.write(f"bridge: internal error: {exception_summary(exc)}\n"
                         "  hint: rerun with --debug and report the traceback\n")
        return EXIT_INTERNAL


def _check_report_paths(args, containers: list[str | None], inputs: list[str | None]) -> None:
    """Before any work: every report path is writable and replaces none of the command's files."""
    from bridge.outputs import check_report_paths

    reports = {flag: getattr(args, flag, None) for flag in ("json", "junit", "markdown", "html")}
    check_report_paths(reports, containers, inputs)
    args.reports_checked = True  # from here on, an error is reported in --json too


def _error_report(args, exc: BridgeError) -> None:
    """A command that ends in an error still writes the --json report it was asked for (once its path
    was checked): a CI step reading it finds the error instead of a missing file."""
    if not getattr(args, "reports_checked", False) or not getattr(args, "json", None):
        return
    from bridge.outputs import write_text
    from bridge.report.model import REPORT_SCHEMA_VERSION
    from bridge.results import dumps

    data = {"schema_version": REPORT_SCHEMA_VERSION, "kind": args.command, "passed": False, "status": "error",
            "exit_code": exc.exit_code, "reason": f"{exc.category}: {exc.message}",
            "error": {"category": exc.category, "message": exc.message, "hint": exc.hint},
            "target": getattr(args, "target", None) or getattr(args, "output", None),
            "source": getattr(args, "source", None)}
    try:
        write_text(args.json, dumps(data))
    except OSError:
        pass  # the error itself has been reported; a report that cannot be written adds nothing


def _input_files(args) -> list[str | None]:
    from bridge.outputs import source_files

    return [*source_files(getattr(args, "source", None)), getattr(args, "weights", None),
            getattr(args, "inputs", None), getattr(args, "labels", None), getattr(args, "policy", None)]


def _finish(report, args) -> int:
    from bridge.outputs import write_text as _write_text
    from bridge.report.terminal import render
    from bridge.results import dumps

    print(render(report))
    data = report.to_json()
    if args.json:
        _write_text(args.json, dumps(data))
    if args.junit:
        from bridge.report.junit import render_junit

        _write_text(args.junit, render_junit([data]))
    if args.markdown:
        from bridge.report.markdown import render_markdown

        _write_text(args.markdown, render_markdown(data))
    if args.html:
        from bridge.report.html import render_html

        _write_text(args.html, render_html(data))
    return STATUS_EXIT[report.status]


def _run(target: str, opts, args):
    """Run an orchestration function, in a contained worker process unless --no-contain, with its
    stage lines on stderr unless --quiet."""
    from bridge.progress import StageLines

    lines = StageLines(args.command, quiet=args.quiet)
    lines("starting")
    if args.no_contain:
        from bridge.contain import run_in_process

        return run_in_process(target, opts, on_stage=lines)
    from bridge.contain import Limits, run_contained

    memory = int(args.memory_limit * 2**30) if args.memory_limit else None
    return run_contained(target, opts, Limits(args.timeout or None, memory), debug=args.debug, on_stage=lines)


def cmd_export(args) -> int:
    from bridge.options import ExportOptions

    from pathlib import Path

    from bridge.outputs import ensure_directory

    _validate(args)
    _check_report_paths(args, [args.output], _input_files(args))
    ensure_directory(Path(args.output).absolute().parent, f"-o {args.output}")
    try:
        report = _export(args, ExportOptions)
    except KeyboardInterrupt:
        from bridge.staging import remove_stale_staging

        remove_stale_staging(args.output)  # a worker killed before it could unwind leaves its staging
        raise
    return _finish(report, args)


def _export(args, ExportOptions):
    return _run("bridge.exporting:run_export", ExportOptions(
        source=args.source, output=args.output, inputs=args.input, ranges=args.input_range, dims=args.dim,
        dims_min=args.dim_min, dims_max=args.dim_max, publish_failed=args.publish_failed,
        input_kinds=args.input_kind, exporter=args.exporter,
        opset=args.opset, framework=args.framework, weights=args.weights, seed=args.seed, force=args.force,
        trust_code=args.trust_code, threads=args.threads, atol=args.atol, rtol=args.rtol, scale_atol=args.scale_atol,
        optimize=args.optimize, precision=args.precision, calibrate=args.calibrate), args)


def _verify_options(args, latency_runs: int):
    from bridge.options import VerifyOptions

    return VerifyOptions(
        target=args.target, source=args.source, devices=args.device or ["cpu"], weights=args.weights,
        framework=args.framework, ranges=args.input_range, dims=args.dim, inputs_npz=getattr(args, "inputs", None),
        seed=args.seed, dims_min=args.dim_min, dims_max=args.dim_max, input_kinds=args.input_kind,
        input_specs=args.input, atol=args.atol, rtol=args.rtol, scale_atol=args.scale_atol,
        policy_file=getattr(args, "policy", None), allow_nonfinite=getattr(args, "allow_nonfinite", False),
        min_top1=getattr(args, "min_top1", None), latency_runs=latency_runs, threads=args.threads,
        trust_code=args.trust_code, localize_dir=getattr(args, "localize", None), labels=getattr(args, "labels", None),
        tf32=args.tf32, ort_spinning=args.ort_spinning == "on", kind=args.command)


def _recover_target(args) -> None:
    """``--atol 1e-5 BUNDLE`` makes --atol (several values) take the TARGET: give it back."""
    if args.target:
        return
    from bridge.errors import UsageError

    for flag in ("atol", "rtol", "scale_atol"):
        values = getattr(args, flag)
        if values and not _tolerance_token(values[-1]):
            args.target = values.pop()
            return
    raise UsageError(f"bridge {args.command}: TARGET is missing", hint="give a bundle directory or a .onnx file")


def _tolerance_token(token: str) -> bool:
    value = token.rpartition(":")[2]
    try:
        float(value)
    except ValueError:
        return False
    return True


def _validate(args) -> None:
    """Every option parsed here, in this process, before a worker starts: a malformed spec, range,
    size, kind or tolerance is a usage error in well under a second, not after a framework import."""
    from bridge.policy import parse_tolerance_args
    from bridge.semantics import parse_kind
    from bridge.spec import check_unique, parse_dim_size, parse_input_spec, parse_range

    check_unique([parse_input_spec(t) for t in getattr(args, "input", [])])
    for text in args.input_range:
        parse_range(text)
    for text in [*args.dim, *args.dim_min, *args.dim_max]:
        parse_dim_size(text)
    for text in args.input_kind:
        parse_kind(text)
    for flag in ("atol", "rtol", "scale_atol"):
        parse_tolerance_args(getattr(args, flag), flag.replace("_", "-"))
    if getattr(args, "policy", None):
        from bridge.policy import build_policy, load_policy_file

        build_policy(load_policy_file(args.policy))
    if args.threads is not None and args.threads < 1:
        raise BridgeError(f"--threads {args.threads}: expected 1 or more")


def cmd_verify(args) -> int:
    _recover_target(args)
    _validate(args)
    _check_report_paths(args, [args.target, args.localize], _input_files(args))
    return _finish(_run("bridge.verifying:run_verify", _verify_options(args, args.latency_runs), args), args)


def cmd_bench(args) -> int:
    _recover_target(args)
    _validate(args)
    if args.latency_runs < 1:
        raise BridgeError("bench needs --latency-runs of at least 1")
    _check_report_paths(args, [args.target], _input_files(args))
    report = _run("bridge.verifying:run_verify", _verify_options(args, args.latency_runs), args)
    _finish(report, args)
    return EXIT_PASS


def cmd_check(args) -> int:
    from bridge.check import cmd_check as run_check

    return run_check(args)


def cmd_inspect(args) -> int:
    from pathlib import Path

    from bridge.bundle import is_bundle, open_bundle
    from bridge.onnx_file import describe, io_specs, load_checked

    target = Path(args.target)
    if is_bundle(target):
        bundle = open_bundle(target)
        m = bundle.manifest
        proto = load_checked(bundle.model_path)
        info = {"kind": "bundle", "target": str(target), "schema_version": m["schema_version"],
                "source": m.get("source") or {}, "exporter": m.get("exporter") or {}, "model": describe(proto),
                "inputs": [s.to_json() for s in bundle.inputs], "outputs": [s.to_json() for s in bundle.outputs],
                "verification": m.get("verification") or {}, "versions": m.get("versions") or {}}
    else:
        proto = load_checked(target)
        ins, outs = io_specs(proto)
        info = {"kind": "onnx", "target": str(target), "model": describe(proto),
                "inputs": [s.to_json() for s in ins], "outputs": [s.to_json() for s in outs]}
    if args.json:
        from bridge.outputs import check_report_paths, write_text
        from bridge.results import dumps

        check_report_paths({"json": args.json}, [args.target], [])
        write_text(args.json, dumps(info))
    print(_inspect_text(info))
    return EXIT_PASS


def _inspect_text(info: dict) -> str:
    from bridge.types import TensorSpec

    model = info["model"]
    opsets = ", ".join(f"{domain} {version}" for domain, version in model["opset"].items())
    lines = []
    if info["kind"] == "bundle":
        src, exp, ver = info["source"], info["exporter"], info["verification"]
        lines.append(f"bundle {info['target']} (schema {info['schema_version']}; every file checked against its sha256)")
        lines.append(f"source:    {src.get('text')} ({src.get('framework')})"
                     + (f", weights {src['weights']}" if src.get("weights") else ""))
        lines.append(f"exporter:  {exp.get('name')}" + "".join(f"; tried first {a.get('exporter')}" for a in
                                                                 exp.get("failed_first") or []))
    else:
        lines.append(f"onnx {info['target']}")
    lines.append(f"model:     opset {opsets}; IR {model['ir_version']}; {model['nodes']} nodes, "
                 f"{model['initializers']} initializers" + (f"; written by {model['producer']}" if model["producer"] else ""))
    lines.append("inputs:    " + ", ".join(TensorSpec.from_json(d).to_text() for d in info["inputs"]))
    lines.append("outputs:   " + ", ".join(TensorSpec.from_json(d).to_text() for d in info["outputs"]))
    if info["kind"] == "bundle":
        ver = info["verification"]
        lines.append(f"verified:  {str(ver.get('status', '?')).upper()} on {ver.get('device')} at {ver.get('at')}"
                     + (f" ({ver['reason']})" if ver.get("reason") else ""))
        versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
        if versions:
            lines.append(f"versions:  {versions}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
