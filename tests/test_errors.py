"""Error lines say what failed: the cause, not a library's heading; reports stay valid JSON."""

import json

from conftest import run_cli

from bridge.errors import exception_summary
from bridge.verdict.results import dumps

TF_GRAPH_ERROR = (
    "Graph execution error:\n\nDetected at node functional_1/dense_1/BiasAdd defined at (most recent call last):\n"
    '  File "<string>", line 9, in <module>\n\n  File "/site-packages/keras/src/layers/layer.py", line 1002, '
    "in __call__\n\nMatrix size-incompatible: In[0]: [2,5], In[1]: [4,3]\n\t [[{{node functional_1/dense_1/BiasAdd}}]] "
    "[Op:__inference_f_35]"
)


class InvalidArgumentError(Exception):
    pass


def test_tensorflow_cause_is_kept_after_its_heading():
    line = exception_summary(InvalidArgumentError(TF_GRAPH_ERROR))
    assert line == ("InvalidArgumentError: Graph execution error: Matrix size-incompatible: In[0]: [2,5], In[1]: [4,3]")


def test_plain_messages_keep_their_first_line_and_are_bounded():
    assert exception_summary(ValueError("bad shape\nmore detail")) == "ValueError: bad shape"
    assert exception_summary(KeyError()) == "KeyError"
    assert len(exception_summary(RuntimeError("x" * 1000))) == 300


def test_reports_are_valid_json_whatever_floats_they_hold():
    text = dumps({"max_abs": float("nan"), "nested": [float("inf"), -float("inf"), 1.5]})
    assert json.loads(text) == {"max_abs": "nan", "nested": ["inf", "-inf", 1.5]}


def test_a_command_ending_in_an_error_still_writes_its_json_report(tmp_path):
    report = tmp_path / "r.json"
    res = run_cli("verify", tmp_path / "missing.onnx", "--json", report)
    assert res.returncode == 2
    data = json.loads(report.read_text())
    assert data["status"] == "error" and data["passed"] is False and data["exit_code"] == 2
    assert "does not exist" in data["error"]["message"]
