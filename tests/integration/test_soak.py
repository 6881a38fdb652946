"""200 verifications in one process: ORT sessions, torch modules and user modules are released, so
resident memory stays flat (under 10 % growth after the warm-up)."""

import json

from conftest import FIXTURES, needs_torch, run_cli, run_py

SRC = f"{FIXTURES / 'torch_models.py'}:tuple_outputs"

SOAK = """
import json, sys
from bridge.bench import rss_mb
from bridge.request import API, build
from bridge.verifying import run_verify
opts = build("verify", {"target": sys.argv[1], "source": sys.argv[2], "threads": 1}, API)
marks = {}
for i in range(200):
    report = run_verify(opts)
    assert report.status == "pass", report.reason
    if i in (19, 199):
        marks[i] = rss_mb()
print(json.dumps(marks))
"""


@needs_torch
def test_200_verifications_do_not_leak(workdir, tmp_path):
    bundle = workdir / "soak"
    assert run_cli("export", SRC, "-o", bundle, "--input", "x:float32[batch,4]").returncode == 0
    script = tmp_path / "soak.py"
    script.write_text(SOAK)
    res = run_py(
        f"import runpy, sys; sys.argv = ['soak', {str(bundle)!r}, {SRC!r}]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    marks = json.loads(res.stdout.strip().splitlines()[-1])
    early, late = marks["19"], marks["199"]
    print(f"RSS after 20 verifications {early:.0f} MiB, after 200 {late:.0f} MiB")
    assert late < early * 1.10, (early, late)
