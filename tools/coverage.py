"""The coverage zoo: run ``zoo/coverage.toml`` through ``bridge check`` and write ``docs/coverage.md``.

    .venv/bin/python tools/coverage.py                          # every model (about an hour on 2 cores)
    .venv/bin/python tools/coverage.py --models transformers.bert,timm.*   # a subset, merged into the summary
    .venv/bin/python tools/coverage.py --render                 # only rewrite docs/coverage.md from the summary

A run is one ``bridge check --config zoo/coverage.toml --jobs 1 --json ...`` in this process (with
``--model`` for each selected model; tools/zoo_run.py, shared by every zoo). Its per-model records are merged by name into ``build/coverage/summary.json``, so a
subset can be rerun without losing the others; the table is then rendered from that summary and from
each model's export and verify reports (``build/coverage/NAME.export.json``, ``NAME.verify.json``):
the exporter that won and the routes that failed first, the verdict, the largest error, the sizes
swept, export and verify time, peak memory where the reports carry it, and for every model that does
not pass, the reason and a judgment from ``zoo/coverage_notes.toml`` ("inherent: ..." or "bridge: ...").

``bridge check`` has no memory flag of its own (each export and verify worker stops past 80 % of the
machine's memory); ``--memory-limit GB`` also caps the address space of every process of the run, so
that a runaway conversion cannot take a shared machine down with it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import tomllib
import zoo_run as Z

ROOT = Z.ROOT
CONFIG = "zoo/coverage.toml"
NOTES = "zoo/coverage_notes.toml"
SUMMARY = "build/coverage/summary.json"
OUT = "docs/coverage.md"
COMMAND = "python tools/coverage.py"

FAMILY_TITLES = {
    "transformers": "transformers (random init, small configs)",
    "timm": "timm",
    "torchvision": "torchvision classification",
    "torchvision_seg": "torchvision segmentation",
    "torchvision_det": "torchvision detection",
    "keras_apps": "keras.applications",
    "keras_rnn": "Keras recurrent",
}
ORDER = {"pass": 0, "inconclusive": 1, "fail": 2, "skipped": 3}


# -- reading the reports ---------------------------------------------------------------------
def _cases(report: dict | None) -> list[dict]:
    if not report:
        return []
    plan = report.get("plan") or {}
    return report.get("cases") or plan.get("cases") or []


def sizes_swept(*reports) -> str:
    """Each dynamic axis and the sizes its cases took ("batch 1,2,3,5,8; seq 1,2,4,5")."""
    axes: dict[str, set] = {}
    for report in reports:
        for case in _cases(report):
            for axis, size in (case.get("sizes") or {}).items():
                axes.setdefault(axis, set()).add(int(size))
        if axes:
            break
    return "; ".join(f"{a} {','.join(str(s) for s in sorted(v))}" for a, v in axes.items()) or "fixed"


ROUTE_NAMES = {
    "dynamo": "torch.onnx.dynamo",
    "torchscript": "torch.onnx.torchscript",
    "function": "tf2onnx.from_function",
    "frozen": "tf2onnx.frozen",
}


def _route(attempt) -> str:
    if isinstance(attempt, dict):
        name = attempt.get("exporter") or attempt.get("name") or attempt.get("route") or "?"
    else:
        name = attempt
    return ROUTE_NAMES.get(str(name), str(name))


def exporter(report: dict | None) -> tuple[str, str]:
    """(the exporter whose artifact was kept, the routes that failed before it)."""
    exp = (report or {}).get("exporter") or {}
    return exp.get("name") or "-", ", ".join(_route(a) for a in exp.get("failed_first") or [])


def failed_attempts(report: dict | None) -> list[str]:
    """One line per exporter route that failed first: its name and why (a conversion error, or the
    parity verdict of its artifact)."""
    exp = (report or {}).get("exporter") or {}
    lines = []
    for attempt in exp.get("failed_first") or []:
        why = ""
        if isinstance(attempt, dict):
            why = attempt.get("error") or attempt.get("reason") or attempt.get("message") or ""
            if attempt.get("verdict"):
                why = f"its artifact's verdict was {attempt['verdict']}: {why}"
        lines.append(f"{_route(attempt)}: {_one_line(str(why), 400)}")
    return lines


def peak_memory(*reports) -> float | None:
    peaks = []
    for r in reports:
        env = (r or {}).get("environment") or {}
        for key in ("peak_rss_mb", "peak_rss_mib"):
            if isinstance(env.get(key), (int, float)):
                peaks.append(float(env[key]))
    return max(peaks) if peaks else None


def worst_check(report: dict | None) -> dict | None:
    """The check that decided a non-pass: the first failing, else inconclusive, output check."""
    checks = (report or {}).get("checks") or []
    for status in ("fail", "inconclusive"):
        for c in checks:
            if c.get("status") == status:
                return c
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split()).replace(str(ROOT) + os.sep, "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _num(x, fmt: str = ".1e") -> str:
    return "-" if not isinstance(x, (int, float)) else format(x, fmt)


def row(record: dict, workdir: Path) -> dict:
    name = record["name"]
    family, _, model = name.partition(".")
    export = Z.load(record.get("export_report") or workdir / f"{name}.export.json")
    verify = Z.load(record.get("verify_report") or workdir / f"{name}.verify.json")
    if record.get("error") and record["error"].get("step") == "export":
        verify = None  # a stale verify report of an earlier run is not this run's
    won, failed = exporter(export)
    return {
        "name": name,
        "family": family,
        "model": model or name,
        "status": record.get("status", "fail"),
        "exporter": won,
        "failed_first": failed,
        "max_abs": record.get("max_abs"),
        "sizes": sizes_swept(verify, export),
        "export_s": Z.log_seconds(workdir / f"{name}.export.log"),
        "verify_s": Z.log_seconds(workdir / f"{name}.verify.log"),
        "peak_mb": peak_memory(export, verify),
        "message": record.get("message") or "",
        "error": record.get("error"),
        "export": export,
        "verify": verify,
        "seconds": record.get("seconds"),
    }


# -- rendering -------------------------------------------------------------------------------
def load_notes(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh).get("models", {})
    except FileNotFoundError:
        return {}


def classify(r: dict, notes: dict) -> str:
    note = notes.get(r["name"])
    if not note or "class" not in note:
        return "unclassified: not yet judged (add it to zoo/coverage_notes.toml)"
    return f"{note['class']}: {note['why']}"


def _not_run(configured: list[str] | None, ran: set[str]) -> list[str]:
    """The config's models this page has no row for, named, so that the table never looks complete
    when it is not."""
    missing = [n for n in configured or [] if n not in ran]
    if not missing:
        return []
    return [
        f"The config holds {len(configured)} models; {len(missing)} have no row here yet (not run for this "
        f"page, not failed): {', '.join(f'`{n}`' for n in missing)}. Run them with "
        f"`{COMMAND} --models NAME,...`.",
        "",
    ]


def render(summary: dict, notes: dict, workdir: Path, config_rel: str, configured: list[str] | None = None) -> str:
    rows = [row(m, workdir) for m in summary.get("models", [])]
    n = len(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "inconclusive", "skipped")}
    rate = 100.0 * counts["pass"] / n if n else 0.0
    total_s = sum(r["seconds"] or 0 for r in rows)
    env = (
        next(
            (
                (r["verify"] or r["export"] or {}).get("environment")
                for r in rows
                if (r["verify"] or r["export"] or {}).get("environment")
            ),
            {},
        )
        or {}
    )
    versions = {**((env or {}).get("versions") or {})}
    for r in rows:  # the TensorFlow side's versions come from a Keras model's report
        for k, v in (((r["verify"] or r["export"] or {}).get("environment") or {}).get("versions") or {}).items():
            versions.setdefault(k, v)
    has_peak = any(r["peak_mb"] is not None for r in rows)
    lines = [
        "# Coverage zoo",
        "",
        f"{n} real architectures with random weights, each exported to ONNX and verified by `bridge check`",
        f"(`{config_rel}`), one model at a time on the development machine. Nothing is downloaded: transformers",
        "models are built from small configs (2 layers, hidden size 32 to 64), timm and torchvision models from",
        "their architectures, keras.applications with `weights=None` (logits out), Keras recurrent models as",
        "functional models; BatchNorm statistics are calibrated on seeded batches so that no reference is",
        "degenerate (`zoo/hf.py`, `zoo/vision.py`, `zoo/keras_apps.py`). Every model runs bridge's full case plan",
        "(two seeded draws, each dynamic axis at 1 and above its export size, a large batch, range boundaries,",
        "attention-mask variants) with the default tolerances; nothing is tuned per model.",
        "",
        "Reproduce the table (about an hour on two cores; `--models a,b` reruns a subset, globs allowed, and",
        "merges it into the summary; `--render` only rewrites this page):",
        "",
        "```bash",
        f"{COMMAND} --memory-limit 14",
        "# the same run without the renderer:",
        f".venv/bin/python -m bridge check --config {config_rel} --jobs 1 --json build/coverage/summary.json",
        "```",
        "",
        "## Totals",
        "",
        f"**{n} models: {counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive"
        + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
        + f"; pass rate {rate:.1f}%.**"
        f" Total time {total_s / 60:.0f} min (export + verify of every model, one at a time).",
        "",
        *_not_run(configured, {r["name"] for r in rows}),
        "| family | models | pass | fail | inconclusive |",
        "| --- | --- | --- | --- | --- |",
    ]
    families = list(dict.fromkeys(r["family"] for r in rows))
    for fam in families:
        fr = [r for r in rows if r["family"] == fam]
        lines.append(
            f"| {FAMILY_TITLES.get(fam, fam)} | {len(fr)} | {sum(r['status'] == 'pass' for r in fr)} | "
            f"{sum(r['status'] == 'fail' for r in fr)} | {sum(r['status'] == 'inconclusive' for r in fr)} |"
        )
    machine = (env or {}).get("machine") or {}
    lines += [
        "",
        "Environment: "
        + ", ".join(
            f"{k} {versions[k]}"
            for k in ("torch", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "onnxscript")
            if k in versions
        )
        + (f"; {machine.get('cpus')} CPUs" if machine.get("cpus") else "")
        + ", 2 threads per side.",
        "",
        "## Models",
        "",
        "Columns: the exporter whose artifact passed its own checks and was kept (routes that failed before it in",
        "brackets); the verdict; the largest absolute error over every case and output; the sizes each dynamic",
        "axis took over the case plan (other axes are fixed by the architecture or by the factory); the wall",
        "time of the `bridge export` and `bridge verify` processes (imports, export or conversion, every case on",
        "both sides); peak resident memory"
        + (
            " of the export and verify workers."
            if has_peak
            else ": not reported by the reports of this bridge version (`environment.peak_rss_mb`), so not shown."
        ),
        "",
        "| family | model | exporter | verdict | max abs | sizes swept | export s | verify s | peak MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        exp = r["exporter"] + (f" (after {r['failed_first']} failed)" if r["failed_first"] else "")
        verdict = r["status"].upper()
        lines.append(
            f"| {r['family']} | {r['model']} | {exp} | {verdict} | {_num(r['max_abs'])} | {r['sizes']} | "
            f"{_num(r['export_s'], '.0f')} | {_num(r['verify_s'], '.0f')} | {_num(r['peak_mb'], '.0f')} |"
        )
    bad = [r for r in rows if r["status"] not in ("pass", "skipped")]
    lines += ["", "## Models that do not pass", ""]
    if not bad:
        lines += ["None.", ""]
    for r in bad:
        lines += [
            f"### {r['name']}: {r['status'].upper()}",
            "",
            f"- reason: {_one_line(r['message'] or '(no message)', 600)}",
        ]
        if r["error"]:
            lines.append(f"- step: `{r['error'].get('step')}` exited {r['error'].get('exit_code')}")
        for attempt in failed_attempts(r["export"]):
            lines.append(f"- exporter attempt: {attempt}")
        c = worst_check(r["verify"] or r["export"])
        if c:
            lines.append(
                f"- evidence: output `{c.get('name')}`, case `{c.get('case')}`: reference max |value| "
                f"{_num(c.get('ref_abs_max'), '.2e')}, max abs error {_num(c.get('max_abs'), '.2e')}, "
                f"tolerance applied {_num(c.get('applied_atol'), '.2e')}"
                + (f"; {_one_line(c.get('reason'), 300)}" if c.get("reason") else "")
            )
        lines += [f"- judgment: {classify(r, notes)}", ""]
    fallbacks = [r for r in rows if r["status"] == "pass" and r["failed_first"]]
    if fallbacks:
        lines += [
            "## Routes that failed before the kept one",
            "",
            "`--exporter auto` (the default) tries each export route in turn (torch: dynamo, then TorchScript;",
            "TensorFlow: bridge's tf2onnx routes) and keeps the first artifact that passes its own checks.",
            "These models passed on a later route; the earlier routes failed as follows:",
            "",
        ]
        for r in fallbacks:
            for attempt in failed_attempts(r["export"]):
                lines.append(f"- `{r['name']}`: {attempt}")
            if (notes.get(r["name"]) or {}).get("fallback"):
                lines.append(f"  - why: {notes[r['name']]['fallback']}")
        lines.append("")
    partial = [
        (
            r,
            [
                c
                for rep in (r["export"], r["verify"])
                for c in (rep or {}).get("checks") or []
                if c.get("status") == "inconclusive"
            ],
        )
        for r in rows
        if r["status"] == "pass"
    ]
    partial = [(r, cs) for r, cs in partial if cs]
    if partial:
        lines += [
            "## Passing models with inconclusive cases",
            "",
            "An output passes when some case proved it and none failed; a case that proved nothing is",
            "listed here with its reason (the report's `checks` have every case).",
            "",
        ]
        for r, cs in partial:
            lines.append(
                f"- `{r['name']}` (export and verify): {', '.join(sorted({str(c.get('case')) for c in cs}))}: "
                f"{_one_line(cs[0].get('reason'), 400)}"
            )
            if (notes.get(r["name"]) or {}).get("cases"):
                lines.append(f"  - why: {notes[r['name']]['cases']}")
        lines.append("")
    stale = [
        k
        for k in notes
        if "class" in notes[k]
        and k in {r["name"] for r in rows}
        and next(r for r in rows if r["name"] == k)["status"] == "pass"
    ]
    if stale:
        lines += [
            "Judged earlier but passing now (their notes in `zoo/coverage_notes.toml` are stale): "
            + ", ".join(f"`{k}`" for k in stale)
            + ".",
            "",
        ]
    stamp = max((m.get("run_at") or "" for m in summary.get("models", [])), default="")
    lines += [
        f"_Generated by `{COMMAND}` from `build/coverage/summary.json`; last model run {stamp or 'unknown'}._",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG, help=f"the zoo config (default {CONFIG})")
    parser.add_argument("--summary", default=SUMMARY, help=f"merged check summary (default {SUMMARY})")
    parser.add_argument("--notes", default=NOTES, help=f"judgments of non-passing models (default {NOTES})")
    parser.add_argument("--out", default=OUT, help=f"the Markdown page (default {OUT})")
    parser.add_argument("--models", help="comma-separated model names or globs (e.g. 'timm.*,transformers.bert')")
    parser.add_argument("--render", action="store_true", help="do not run anything; render the existing summary")
    parser.add_argument("--jobs", type=int, default=1, help="models checked in parallel (default 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per export/verify process (default 900)")
    parser.add_argument(
        "--memory-limit", type=float, metavar="GB", help="address-space limit of every process of the run (RLIMIT_AS)"
    )
    args = parser.parse_args(argv)

    config = (ROOT / args.config).resolve()
    summary_path = ROOT / args.summary
    names = Z.config_models(config)
    if args.render:
        summary = Z.kept_summary(summary_path, "coverage")
    else:
        summary = Z.run_and_merge(
            config,
            summary_path,
            args.models,
            "coverage",
            jobs=args.jobs,
            timeout=args.timeout,
            memory_limit=args.memory_limit,
        )
    workdir = Path(summary.get("workdir") or ROOT / "build" / "coverage")
    text = render(summary, load_notes(ROOT / args.notes), workdir, os.path.relpath(config, ROOT), names)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    missing = [n for n in names if n not in {m["name"] for m in summary.get("models", [])}]
    counts = summary.get("counts", {})
    print(
        f"coverage: {sum(counts.values())} models in the summary ({counts}); "
        f"{len(missing)} of the config not run yet; wrote {os.path.relpath(out, ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
