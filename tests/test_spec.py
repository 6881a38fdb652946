import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import SpecError
from bridge.spec import apply_ranges, check_unique, parse_dim_size, parse_input_spec, parse_range
from bridge.types import TensorSpec


def test_parse_dynamic_and_fixed_dims():
    s = parse_input_spec("x:float32[batch,3,224,224]")
    assert s == TensorSpec("x", "float32", ("batch", 3, 224, 224))
    assert s.dynamic_axes == {0: "batch"}
    assert s.shape({"batch": 4}) == (4, 3, 224, 224)
    assert s.shape() == (2, 3, 224, 224)  # default size of a dynamic axis


def test_aliases_and_scalars():
    assert parse_input_spec("ids:long[b, seq]").dtype == "int64"
    assert parse_input_spec("t:fp16[]").dims == ()


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "x:float32",
        "x:float32[",
        "x:nope[1]",
        "x:float32[1,,2]",
        "x:float32[-1]",
        "x:float32[1.5]",
        "1x:float32[1]",
        ":float32[1]",
    ],
)
def test_bad_specs_raise_with_example(text):
    with pytest.raises(SpecError) as info:
        parse_input_spec(text)
    assert info.value.exit_code == 2


def test_ranges():
    assert parse_range("ids=0:1000") == ("ids", (0.0, 1000.0))
    assert parse_range("x=-1.5:2") == ("x", (-1.5, 2.0))
    for bad in ("ids", "ids=0", "ids=5:1", "ids=a:b", "=0:1", "x=0:inf"):
        with pytest.raises(SpecError):
            parse_range(bad)


def test_apply_ranges_rejects_unknown_input_and_empty_int_range():
    specs = [parse_input_spec("ids:int64[batch,4]")]
    assert apply_ranges(specs, {"ids": (0, 7)})[0].value_range == (0, 7)
    with pytest.raises(SpecError, match="not an input"):
        apply_ranges(specs, {"x": (0, 1)})
    with pytest.raises(SpecError, match="holds no integer"):
        apply_ranges(specs, {"ids": (0.1, 0.5)})


def test_dim_sizes_and_duplicates():
    assert parse_dim_size("batch=4") == ("batch", 4)
    for bad in ("batch", "batch=0", "batch=x", "1=2"):
        with pytest.raises(SpecError):
            parse_dim_size(bad)
    with pytest.raises(SpecError, match="twice"):
        check_unique([parse_input_spec("x:float32[1]"), parse_input_spec("x:int64[1]")])


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
dims = st.lists(st.one_of(st.integers(0, 4096), names), max_size=6)
dtypes = st.sampled_from(["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"])


@given(names, dtypes, dims)
def test_roundtrip_property(name, dtype, ds):
    spec = TensorSpec(name, dtype, tuple(ds))
    assert parse_input_spec(spec.to_text()) == spec
    assert TensorSpec.from_json(spec.to_json()) == spec


@given(st.text(max_size=40))
def test_parser_never_crashes(text):
    try:
        spec = parse_input_spec(text)
    except SpecError:
        return
    assert isinstance(spec, TensorSpec)
