"""Running a model's steps: prepare commands, then ``python -m bridge export`` and ``python -m bridge
verify``, each in a subprocess of its own session (logged, time-limited, killable on interrupt),
and the verdicts read back from their JSON reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.check.config import CheckConfig, ModelConfig
from bridge.check.progress import NullProgress
from bridge.check.verdicts import FAIL, SKIPPED, Check, ModelResult, compare_baseline, evaluate_latency, report_max_abs
from bridge.verdict.status import rank, worst

_VERDICT_EXITS = (0, 1, 3)
KILL_GRACE_S = 60.0  # a step outliving its own --timeout by this much is killed  # exit codes of export/verify that carry a verdict (and a JSON report)


def _first_error_line(text: str) -> str:
    """The one-line error bridge prints (``bridge: <category>: ...``), else stderr's first line."""
    from bridge.progress import is_stage_line

    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not is_stage_line(ln)]
    for i, ln in enumerate(lines):
        if ln.startswith("bridge:"):  # whole, with its hint: every exporter's cause, for the JUnit file
            hint = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("hint:") else ""
            return (ln + (f" ({hint})" if hint else ""))[:4000]
    if lines and lines[0].startswith("Traceback"):  # a Python crash: its last line names the exception
        return lines[-1][:400]
    return lines[0][:400] if lines else "(no output on stderr)"


class _Children:
    """Every subprocess started here, so an interrupt can end them (they run in sessions of their own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set = set()
        self.stopping = False

    def kill_all(self) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for p in procs:
            _kill(p)


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


@dataclass
class StepResult:
    argv: list
    returncode: int | None  # None: timed out or interrupted
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


class Runner:
    def __init__(
        self,
        config: CheckConfig,
        *,
        workdir: Path,
        threads: int,
        timeout: float | None,
        update_baselines: bool = False,
        progress=None,
        compare_baselines: bool = True,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.threads = threads
        self.timeout = timeout or None
        self.update_baselines = update_baselines
        self.compare_baselines = compare_baselines  # off where the caller compares (a Ray driver holds the files)
        self.progress = progress or NullProgress()
        self.children = _Children()
        self.popen_kwargs: dict = {}  # extra subprocess.Popen arguments (a Ray task's: die with the worker)
        self.prepared: dict[tuple, StepResult] = {}
        self.prepare_failures: dict[str, str] = {}
        self.prepare_seconds: dict[str, float] = {}  # counted in the model's seconds
        pkg_root = str(Path(__file__).resolve().parents[2])  # the directory holding bridge/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.env = env

    # one subprocess, its output kept in a log file
    def _run(self, argv: list[str], log: Path, timeout: float | None = None) -> StepResult:
        """``timeout``: the step's own limit (its worker stops itself and names the stage); the process is
        killed a little after it, should it not end."""
        limit = (timeout + KILL_GRACE_S) if timeout else self.timeout
        start = time.perf_counter()
        with self.children.lock:
            if self.children.stopping:
                return StepResult(argv, None, "", "interrupted", 0.0)
            proc = subprocess.Popen(
                argv,
                cwd=self.config.base_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
                **self.popen_kwargs,
            )
            self.children.procs.add(proc)
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            stdout, stderr = proc.communicate()
        except BaseException:  # an interrupt: the child runs in its own session and did not get it
            _kill(proc)
            proc.wait()
            raise
        finally:
            with self.children.lock:
                self.children.procs.discard(proc)
        seconds = time.perf_counter() - start
        rc = None if timed_out or self.children.stopping else proc.returncode
        try:
            log.write_text(
                f"$ {' '.join(argv)}\n# exit {proc.returncode}{' (timed out)' if timed_out else ''}, "
                f"{seconds:.1f} s\n\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            )
        except OSError:
            pass
        return StepResult(argv, rc, stdout, stderr, seconds, timed_out)

    def prepare(self, models: list[ModelConfig]) -> None:
        """Run the prepare commands of models with a missing file, one at a time and each distinct
        command once (two models may share one: both read the same data)."""
        for m in models:
            if m.skip or not m.prepare:
                continue
            missing = [p for p in m.required_files() if not os.path.exists(p)]
            if not missing:
                continue
            self.progress.phase(m.name, "preparing")
            for i, argv in enumerate(m.prepare):
                key = tuple(argv)
                if key not in self.prepared:
                    self.prepared[key] = self._run(argv, self.workdir / f"{m.name}.prepare{i}.log")
                    self.prepare_seconds[m.name] = self.prepare_seconds.get(m.name, 0.0) + self.prepared[key].seconds
                step = self.prepared[key]
                if step.returncode != 0:
                    what = "timed out" if step.timed_out else f"exit {step.returncode}"
                    shown = " ".join(["python", *argv[1:]] if argv[0] == sys.executable else argv)
                    self.prepare_failures[m.name] = (
                        f"prepare command '{shown}' failed ({what}): {_first_error_line(step.stderr)}"
                    )
                    break
            else:
                still = [p for p in m.required_files() if not os.path.exists(p)]
                if still:
                    self.prepare_failures[m.name] = f"prepare ran, but {', '.join(still)} is still missing"

    def run_model(self, m: ModelConfig) -> ModelResult:
        start = time.perf_counter()
        result = self._run_model(m)
        result.seconds = time.perf_counter() - start + self.prepare_seconds.get(m.name, 0.0)
        return result

    def _fail(self, result: ModelResult, step: str, run: StepResult | None, message: str) -> ModelResult:
        result.status, result.message = FAIL, message
        result.error = {"step": step, "exit_code": run.returncode if run else None, "message": message}
        return result

    def _run_model(self, m: ModelConfig) -> ModelResult:
        result = ModelResult(name=m.name)
        if m.skip:
            result.status, result.message = SKIPPED, m.skip
            return result
        if m.name in self.prepare_failures:
            return self._fail(result, "prepare", None, self.prepare_failures[m.name])
        py = [sys.executable, "-m", "bridge"]
        bundle = self.workdir / m.name
        export_json, verify_json = self.workdir / f"{m.name}.export.json", self.workdir / f"{m.name}.verify.json"
        for stale in (export_json, verify_json):
            if stale.exists():
                stale.unlink()
        before = _stamp(bundle / "manifest.json")  # an earlier run's bundle must not pass for this one's
        self.progress.phase(m.name, "exporting")
        # --publish-failed: the check's own verify step judges the bundle (and compares it with a baseline)
        export = self.step_request(m.export, output=str(bundle), force=True, publish_failed=True, json=str(export_json))
        if export.precision == "auto" and m.latency is not None:  # auto's bench picks the candidate: the model's runs
            export = export.replace(origin="bridge check", latency_runs=m.latency.runs)
        run = self._run([*py, *export.to_argv()], self.workdir / f"{m.name}.export.log", export.timeout)
        problem = self._step_problem("export", run, export_json, export.timeout)
        if problem:
            return self._fail(result, "export", run, problem)
        result.export_json = str(export_json)
        result.export_report = json.loads(export_json.read_text())
        after = _stamp(bundle / "manifest.json")
        if after is None or after == before:  # e.g. an inconclusive export: no bundle was written
            result.verdict = result.status = result.export_report.get("status") or FAIL
            result.message = "export: " + (result.export_report.get("reason") or "no bundle was written")
            result.max_abs = report_max_abs(result.export_report)
            return result
        result.bundle = str(bundle)

        self.progress.phase(m.name, "verifying")
        verify = self.step_request(
            m.verify,
            target=str(bundle),
            json=str(verify_json),
            latency_runs=m.latency.runs if m.latency is not None else 0,
        )
        run = self._run([*py, *verify.to_argv()], self.workdir / f"{m.name}.verify.log", verify.timeout)
        problem = self._step_problem("verify", run, verify_json, verify.timeout)
        if problem:
            return self._fail(result, "verify", run, problem)
        result.verify_json = str(verify_json)
        report = result.report = json.loads(verify_json.read_text())
        export_status = result.export_report.get("status") or FAIL
        verify_status = report.get("status") or FAIL
        result.verdict = worst(export_status, verify_status)
        if rank(verify_status) >= rank(export_status):
            result.message = report.get("reason") or ""
        else:
            result.message = "export: " + (result.export_report.get("reason") or "")
        result.max_abs = report_max_abs(report)
        return judge(m, result, baseline=self.compare_baselines and not self.update_baselines)

    def step_request(self, request, **fixed):
        """A model's export or verify request as this check runs it: its bundle and report paths, the
        check's threads and timeout where the model sets none, quiet stage lines, and (verify) strict
        terms unless the model's config says otherwise: in CI the bundle under test sets no term of its test."""
        changes = dict(fixed, quiet=True)
        if request.command == "verify" and not request.given("strict_terms"):
            changes["strict_terms"] = True
        if not request.given("threads"):
            changes["threads"] = self.threads
        if not request.given("timeout") and self.timeout is not None:
            changes["timeout"] = self.timeout
        return request.replace(origin="bridge check", **changes)

    def _step_problem(self, step: str, run: StepResult, json_path: Path, timeout: float | None) -> str | None:
        if run.timed_out:
            return f"{step} timed out after {timeout:g} s"
        if run.returncode is None:
            return f"{step} was interrupted"
        if run.returncode not in _VERDICT_EXITS:
            return f"{step} failed (exit {run.returncode}): {_first_error_line(run.stderr)}"
        if not json_path.is_file():
            return f"{step} exited {run.returncode} but wrote no report"
        try:
            json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            return f"{step} wrote an unreadable report: {exc}"
        return None


def judge(m: ModelConfig, result: ModelResult, *, baseline: bool = True) -> ModelResult:
    """The model's status from its parity verdict, its latency budgets and (with ``baseline``) its
    baseline comparison, all read from the verify report. Pure but for reading the baseline file; a
    second call gives the same budgets, so a driver may add the baseline to a worker's result."""
    report = result.report
    result.budgets, result.latency = evaluate_latency(m.latency, report)
    result.baseline = []
    if baseline and m.baseline:
        try:
            stored = json.loads(Path(m.baseline).read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
            result.baseline = compare_baseline(stored, report, os.path.basename(m.baseline))
        except (OSError, ValueError) as exc:
            result.baseline = [Check("baseline", FAIL, f"cannot read baseline {m.baseline}: {exc}")]
    checks = result.budgets + result.baseline
    result.status = worst(result.verdict, *(c.status for c in checks))
    if rank(result.status) > rank(result.verdict):  # a budget or the baseline decided the status
        bad = next(c for c in checks if c.status == result.status)
        result.message = f"{bad.name}: {bad.message}"
    return result


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
