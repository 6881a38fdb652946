"""Conversions tf2onnx lacks, given to it per call as ``custom_op_handlers`` (its registry is left as is).

Each handler rewrites the TensorFlow node in tf2onnx's graph into standard ONNX operators.
"""

from __future__ import annotations

import numpy as np


def _erfc(ctx, node, name, args):
    """Erfc(x) = 1 - Erf(x). tf.nn.gelu(approximate=False), Keras's default GELU, is
    0.5 * x * erfc(-x / sqrt(2))."""
    from tf2onnx import utils

    dtype = ctx.get_dtype(node.output[0])
    shape = ctx.get_shape(node.output[0])
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name, shapes=[shape], dtypes=[dtype])
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=utils.map_onnx_to_numpy_type(dtype)))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def custom_op_handlers() -> dict:
    """tf2onnx's ``custom_op_handlers`` argument: {TF op type: (handler, [])}."""
    return {"Erfc": (_erfc, [])}
