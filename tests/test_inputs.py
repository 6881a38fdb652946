import numpy as np
import pytest

from bridge.errors import InputError
from bridge.spec import parse_input_spec
from bridge.types import Case
from bridge.verdict.inputs import load_npz, make_feeds
from bridge.verdict.plan import plan_cases


def specs():
    return [
        parse_input_spec("x:float32[batch,3]").with_range((0.0, 1.0)),
        parse_input_spec("ids:int64[batch,seq]").with_range((0, 7)),
    ]


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


def test_plan_sweeps_each_axis_alone_then_all_apart_then_large():
    cases = plan_cases(specs(), seed=0).cases
    sized = [(c.label, c.sizes) for c in cases if not c.fill]
    assert sized == [
        ("draw0", {"batch": 2, "seq": 2}),
        ("draw1", {"batch": 2, "seq": 2}),
        ("batch=1", {"batch": 1, "seq": 2}),
        ("batch=5", {"batch": 5, "seq": 2}),
        ("seq=1", {"batch": 2, "seq": 1}),
        ("seq=5", {"batch": 2, "seq": 5}),
        ("distinct", {"batch": 3, "seq": 4}),
        ("batch=8", {"batch": 8, "seq": 2}),
    ]
    assert len({c.seed for c in cases}) == len(cases)
    static = plan_cases([parse_input_spec("x:float32[1,3]")], seed=0).cases
    assert [c.label for c in static] == ["draw0", "draw1"]


def test_plan_respects_declared_minimums_and_maximums():
    plan = plan_cases(
        [parse_input_spec("wav:float32[batch,samples]")],
        seed=0,
        sizes={"samples": 400},
        minimum={"samples": 400},
        maximum={"batch": 4},
    )
    assert all(c.sizes["samples"] >= 400 for c in plan.cases)
    assert all(c.sizes["batch"] <= 4 for c in plan.cases)
    assert not any(c.sizes["samples"] == 1 for c in plan.cases)
    assert any("no large case" in n for n in plan.notes)


def test_large_case_stays_within_the_memory_budget():
    big = [parse_input_spec("img:float32[batch,3,512,512]")]  # 3 MiB per image
    plan = plan_cases(big, seed=0, budget_bytes=16 << 20)
    large = [c for c in plan.cases if c.label.startswith("batch=") and c.sizes["batch"] > 5]
    assert large == [] or large[0].sizes["batch"] * 3 * 512 * 512 * 4 <= 16 << 20
    assert any("16 MiB" in n for n in plan.notes)


def test_boundary_cases_reach_both_ends_of_a_declared_range():
    ranged = [
        parse_input_spec("ids:int64[batch,3]").with_range((0, 500)),
        parse_input_spec("x:float32[batch]").with_range((0.0, 1.0)),
    ]
    plan = plan_cases(ranged, seed=0)
    by_label = {c.label: make_feeds(ranged, c) for c in plan.cases}
    assert (by_label["ids.low"]["ids"] == 0).all() and (by_label["ids.high"]["ids"] == 499).all()
    assert set(np.unique(by_label["ids.mix"]["ids"])) <= {0, 499}
    top = by_label["x.high"]["x"]
    assert (top < 1.0).all() and (top == np.nextafter(np.float32(1), np.float32(0))).all()
    assert (by_label["x.low"]["x"] == 0).all()
    assert all(f["ids"].max() < 500 and f["x"].max() < 1 for f in by_label.values())


def test_integer_input_without_a_range_gets_a_note_and_an_optional_full_range_case():
    plan = plan_cases([parse_input_spec("ids:int32[batch,4]")], seed=0)
    assert any("ids: integer input without a declared range" in n for n in plan.notes)
    full = next(c for c in plan.cases if c.label == "ids.full")
    assert full.optional
    values = make_feeds([parse_input_spec("ids:int32[batch,4]")], full)["ids"]
    assert values.dtype == np.int32 and np.abs(values.astype(np.int64)).max() > 10


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
