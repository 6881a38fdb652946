import pytest

from bridge.errors import UsageError
from bridge.request import Invalid, Tolerances
from bridge.verdict.policy import DEFAULTS, Policy, build_policy, load_policy_file


def tol(*tokens):
    """A tolerance option as the command line gives it (``--atol 1e-3 logits:1e-2``)."""
    return Tolerances().from_text(list(tokens))


def test_defaults_by_dtype_and_device():
    p = Policy()
    assert p.tolerance("y", "float32", "cpu") == DEFAULTS[("float32", "cpu")]
    assert p.tolerance("y", "float32", "cuda").scale_atol > p.tolerance("y", "float32", "cpu").scale_atol
    assert p.tolerance("y", "float32", "cuda-tf32").scale_atol > p.tolerance("y", "float32", "cuda").scale_atol
    assert p.tolerance("y", "float16", "cpu").atol >= 1e-3
    assert p.tolerance("n", "int64", "cpu").atol == 0 and p.tolerance("n", "bool", "cuda").rtol == 0


def test_polygraphy_style_overrides_and_precedence():
    parsed = tol("1e-3", "logits:1e-2")
    assert (parsed.value, parsed.outputs) == (1e-3, {"logits": 1e-2})
    p = build_policy({"atol": 1e-4, "outputs": {"score": {"rtol": 0.5}}}, tol("1e-3", "logits:1e-2"), tol("0.1"))
    assert p.tolerance("logits", "float32", "cpu").atol == 1e-2
    assert p.tolerance("other", "float32", "cpu").atol == 1e-3  # command line beats the file
    assert p.tolerance("score", "float32", "cpu").rtol == 0.5  # per output beats global
    assert p.tolerance("other", "float32", "cpu").rtol == 0.1
    assert p.tolerance("ids", "int64", "cpu").atol == 0  # integers stay exact


def test_bad_values_are_usage_errors():
    for bad in (["x"], ["-1"], ["nan"], ["logits:abc"]):
        with pytest.raises(Invalid):
            tol(*bad)


def test_policy_file_roundtrip(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(
        'atol = 1e-4\n[outputs.logits]\nrtol = 0.01\n[defaults]\n"float32/cuda" = {atol = 0.01, rtol = 0.02}\n'
    )
    p = build_policy(load_policy_file(str(f)))
    assert p.tolerance("logits", "float32", "cpu").rtol == 0.01
    assert p.tolerance("x", "float32", "cuda").atol == 1e-4  # the global atol overrides every default
    again = Policy.from_json(p.to_json())
    assert again.tolerance("logits", "float32", "cpu") == p.tolerance("logits", "float32", "cpu")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_policy_file(str(tmp_path / "bad.json"))


def test_cuda_rows_strict_by_default_loose_with_tf32():
    import numpy as np

    from bridge.verdict.compare import FAIL, PASS, compare_outputs, verdict

    rng = np.random.default_rng(0)
    ref = {"logits": (rng.standard_normal((4, 1000)) * 40).astype(np.float32)}  # |max| ~ 160
    # fp32 kernel differences (TF32 off): about 1e-6 of the scale
    fp32 = {"logits": ref["logits"] + (rng.standard_normal((4, 1000)) * 1e-6 * 40).astype(np.float32)}
    # TF32 error as measured on conv nets: up to about 5e-3 of the largest magnitude, on every element
    scale = float(np.abs(ref["logits"]).max())
    tf32 = {"logits": ref["logits"] + (rng.standard_normal((4, 1000)) * 1.5e-3 * scale).astype(np.float32)}
    broken = {"logits": ref["logits"] * np.float32(1.02)}
    gross = {"logits": -ref["logits"]}
    policy = Policy()
    assert verdict(compare_outputs(ref, fp32, policy, device="cuda")) == PASS
    assert verdict(compare_outputs(ref, broken, policy, device="cuda")) == FAIL
    assert verdict(compare_outputs(ref, tf32, policy, device="cuda")) == FAIL  # strict row: TF32 is not fp32
    assert verdict(compare_outputs(ref, tf32, policy, device="cuda-tf32")) == PASS
    assert verdict(compare_outputs(ref, gross, policy, device="cuda-tf32")) == FAIL
    assert build_policy({}, scale_atol=tol("logits:0")).tolerance("logits", "float32", "cuda").scale_atol == 0


def test_explicit_atol_is_the_whole_absolute_allowance():
    p = build_policy({}, tol("1e-12"), tol("1e-12"))
    assert p.tolerance("y", "float32", "cpu").scale_atol == 0.0
    assert build_policy({}, tol("logits:1e-3")).tolerance("other", "float32", "cpu").scale_atol > 0
    assert build_policy({}, tol("logits:1e-3")).tolerance("logits", "float32", "cpu").scale_atol == 0.0
    assert build_policy({}, tol("1e-3"), scale_atol=tol("1e-4")).tolerance("y", "float32", "cpu").scale_atol == 1e-4
