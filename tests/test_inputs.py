import numpy as np
import pytest

from bridge.errors import InputError
from bridge.inputs import load_npz, make_feeds, sweep_cases
from bridge.spec import parse_input_spec
from bridge.types import Case


def specs():
    return [parse_input_spec("x:float32[batch,3]").with_range((0.0, 1.0)),
            parse_input_spec("ids:int64[batch,seq]").with_range((0, 7))]


def test_feeds_are_seeded_ranged_and_shaped():
    a = make_feeds(specs(), Case("a", 5, {"batch": 3, "seq": 4}))
    b = make_feeds(specs(), Case("b", 5, {"batch": 3, "seq": 4}))
    c = make_feeds(specs(), Case("c", 6, {"batch": 3, "seq": 4}))
    assert a["x"].shape == (3, 3) and a["x"].dtype == np.float32
    assert a["ids"].shape == (3, 4) and a["ids"].dtype == np.int64
    assert a["x"].min() >= 0 and a["x"].max() < 1
    assert a["ids"].min() >= 0 and a["ids"].max() < 7
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])


def test_sweep_covers_two_draws_size_one_and_an_odd_size():
    cases = sweep_cases(specs(), seed=0)
    sizes = [c.sizes["batch"] for c in cases]
    assert sizes == [2, 2, 1, 5]
    assert len({c.seed for c in cases}) == 4
    static = sweep_cases([parse_input_spec("x:float32[1,3]")], seed=0)
    assert [c.label for c in static] == ["draw0", "draw1"]


def test_npz_checked_and_never_unpickled(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 3), np.float64), ids=np.ones((4, 2), np.int32))
    feeds = load_npz(good, specs())
    assert feeds["x"].dtype == np.float32 and feeds["ids"].dtype == np.int64
    bad = tmp_path / "obj.npz"
    np.savez(bad, x=np.array([{"a": 1}], dtype=object), ids=np.ones((1, 2), np.int64))
    with pytest.raises(InputError, match="cannot read"):
        load_npz(bad, specs())
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 5), np.float32), ids=np.ones((4, 2), np.int64))
    with pytest.raises(InputError, match="shape"):
        load_npz(wrong, specs())
    with pytest.raises(InputError, match="arrays"):
        np.savez(wrong, x=np.zeros((4, 3), np.float32))
        load_npz(wrong, specs())
