"""``bridge inspect TARGET``: what a bundle or an ONNX file takes and returns, and where it came from.
Everything shown comes from the file under inspection: every string passes through report.text.safe."""

from __future__ import annotations


def add_arguments(p, command: str) -> None:
    p.add_argument("target", metavar="TARGET", help="a bundle directory or a .onnx file")
    p.add_argument("--json", metavar="PATH", help="write what is shown as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args, command: str) -> int:
    from pathlib import Path

    from bridge.artifact.bundle import is_bundle, open_bundle
    from bridge.artifact.onnx_file import describe, io_specs, load_checked
    from bridge.commands import reports
    from bridge.errors import EXIT_PASS

    if args.json:
        args._bridge_guard = guard(args)
        args._bridge_guard.check("--json", args.json)
    target = Path(args.target)
    if is_bundle(target):
        bundle = open_bundle(target)
        m = bundle.manifest
        proto = load_checked(bundle.model_path)
        info = {
            "kind": "bundle",
            "target": str(target),
            "schema_version": m["schema_version"],
            "source": m.get("source") or {},
            "exporter": m.get("exporter") or {},
            "model": describe(proto),
            "inputs": [s.to_json() for s in bundle.inputs],
            "outputs": [s.to_json() for s in bundle.outputs],
            "verification": m.get("verification") or {},
            "versions": m.get("versions") or {},
        }
    else:
        proto = load_checked(target)
        ins, outs = io_specs(proto)
        info = {
            "kind": "onnx",
            "target": str(target),
            "model": describe(proto),
            "inputs": [s.to_json() for s in ins],
            "outputs": [s.to_json() for s in outs],
        }
    if args.json:
        from bridge.verdict.results import dumps

        reports.write_text(args.json, dumps(info))
    print(text(info))
    return EXIT_PASS


PATH_OPTIONS = {"--json": "output"}  # TARGET is read (tests/hostile/test_writers.py enumerates these)


def guard(args):
    """--json never replaces the target or anything inside it (commands/reports.py)."""
    from bridge.commands.reports import Guard

    return Guard([args.target], [args.target])


def write_failure(argv: list, args, exc, command: str = "inspect") -> None:
    """--json holding the error, whatever ended the command."""
    from bridge.commands.reports import error_report, fallback_guard, render, write_all

    known = getattr(args, "_bridge_guard", None) if args is not None else None
    g, paths = fallback_guard("inspect", argv, ("json",), known)
    if not paths:
        return
    data = error_report("inspect", exc, getattr(args, "target", None) if args is not None else None)
    write_all(paths, g, lambda fmt: render(fmt, data))


def text(info: dict) -> str:
    from bridge.report.text import safe
    from bridge.types import TensorSpec

    model = info["model"]
    opsets = ", ".join(f"{domain} {version}" for domain, version in model["opset"].items())
    lines = []
    if info["kind"] == "bundle":
        src, exp = info["source"], info["exporter"]
        lines.append(
            f"bundle {info['target']} (schema {info['schema_version']}; every file checked against its sha256)"
        )
        lines.append(
            f"source:    {src.get('text')} ({src.get('framework')})"
            + (f", weights {src['weights']}" if src.get("weights") else "")
        )
        lines.append(
            f"exporter:  {exp.get('name')}"
            + "".join(f"; tried first {a.get('exporter')}" for a in exp.get("failed_first") or [])
        )
    else:
        lines.append(f"onnx {info['target']}")
    lines.append(
        f"model:     opset {opsets}; IR {model['ir_version']}; {model['nodes']} nodes, "
        f"{model['initializers']} initializers" + (f"; written by {model['producer']}" if model["producer"] else "")
    )
    lines.append("inputs:    " + ", ".join(TensorSpec.from_json(d).to_text() for d in info["inputs"]))
    lines.append("outputs:   " + ", ".join(TensorSpec.from_json(d).to_text() for d in info["outputs"]))
    if info["kind"] == "bundle":
        ver = info["verification"]
        lines.append(
            f"verified:  {str(ver.get('status', '?')).upper()} on {ver.get('device')} at {ver.get('at')}"
            + (f" ({ver['reason']})" if ver.get("reason") else "")
        )
        versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
        if versions:
            lines.append(f"versions:  {versions}")
    return "\n".join(safe(line) for line in lines)
