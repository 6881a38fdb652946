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
    assert sized[:2] == [("draw0", {"batch": 2, "seq": 2}), ("draw1", {"batch": 2, "seq": 2})]
    alone = {c.label: c.sizes for c in cases if "=" in c.label}
    # each axis alone, odd and even, up to its largest (16 for the batch, 64 for any other axis)
    assert [alone[f"batch={n}"] for n in (1, 3, 5, 7, 8, 16)] == [{"batch": n, "seq": 2} for n in (1, 3, 5, 7, 8, 16)]
    assert [alone[f"seq={n}"] for n in (1, 3, 5, 7, 8, 16, 17, 64)] == [
        {"batch": 2, "seq": n} for n in (1, 3, 5, 7, 8, 16, 17, 64)
    ]
    assert dict(sized)["distinct"] == {"batch": 3, "seq": 4}
    assert dict(sized)["large"] == {"batch": 16, "seq": 64}  # every axis at its largest at once
    assert len({c.seed for c in cases}) == len(cases)
    static = plan_cases([parse_input_spec("x:float32[1,3]")], seed=0).cases
    assert [c.label for c in static] == ["draw0", "draw1"]


def test_the_largest_size_is_declared_else_stated_else_a_default_and_reported():
    plan = plan_cases(specs(), seed=0, maximum={"batch": 4}, stated={"seq": (512, "pos.num_embeddings=512")})
    assert plan.largest["batch"] == {"size": 4, "from": "declared maximum"}
    assert plan.largest["seq"]["size"] == 512 and "pos.num_embeddings" in plan.largest["seq"]["from"]
    assert any(c.label == "seq=512" for c in plan.cases) and not any(c.sizes["batch"] > 4 for c in plan.cases)


def test_other_seeds_give_disjoint_draws_in_every_case():
    a = {c.label: c.seed for c in plan_cases(specs(), seed=1).cases}
    b = {c.label: c.seed for c in plan_cases(specs(), seed=2).cases}
    assert a.keys() == b.keys() and not set(a.values()) & set(b.values())


def test_search_rows_come_from_many_families_over_the_domain():
    from bridge.verdict.inputs import search_rows

    rng = np.random.default_rng(0)
    ranged = parse_input_spec("x:float32[batch,64]").with_range((0.0, 1.0))
    rows = search_rows(ranged, (256, 64), rng)
    assert rows.dtype == np.float32 and rows.min() >= 0 and rows.max() < 1
    constant = [r for r in rows if r.min() == r.max()]
    narrow = [r for r in rows if 0 < r.max() - r.min() < 0.05]
    assert constant and narrow  # one batch, many distributions
    free = search_rows(parse_input_spec("x:float32[batch,64]"), (256, 64), rng)
    assert np.abs(free).max() > 8 and any((r == np.round(r - 0.5) + 0.5).all() for r in free)  # wide draws, ties
    ids = search_rows(parse_input_spec("ids:int64[batch,8]").with_range((0, 500)), (128, 8), rng)
    assert ids.min() >= 0 and ids.max() == 499


def test_thresholds_of_the_graph_are_found_and_probed_on_both_sides():
    from onnx import TensorProto, helper

    from bridge.verdict import thresholds
    from bridge.verdict.inputs import probe

    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Add", ["x2", "one"], ["y"]),  # y = 2x + 1
        helper.make_node("Greater", ["y", "c"], ["gt"]),  # 2x + 1 > 2  <=>  x > 0.5
        helper.make_node("Round", ["x2"], ["r"]),  # ties of 2x: x = (k + 0.5) / 2
        helper.make_node("Where", ["gt", "r", "x"], ["out"]),
    ]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("two", 2.0), ("one", 1.0), ("c", 2.0))]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch"])],
        inits,
    )
    found = thresholds.find(helper.make_model(graph))
    values = [v for v, _ in found.for_input("x")]
    assert 0.5 in values and 0.25 in values and -0.25 in values  # the comparison, and .5 ties of Round(2x)
    spec = parse_input_spec("x:float32[batch]").with_range((0.0, 1.0))
    near = probe(spec, (4096,), [0.5], np.random.default_rng(0))
    assert (near < 0.5).any() and (near == 0.5).any() and (near > 0.5).any() and np.abs(near - 0.5).max() < 0.01


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
    assert plan.largest["batch"] == {"size": 4, "from": "declared maximum"}  # how far the axis is taken, reported


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
