"""Names of ONNX operators and types that say what a graph is (no import of onnx: plain constants)."""

# Operators that only an int8 graph holds (ONNX and com.microsoft), and the names of weights in float16.
QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QLinearConv",
    "QLinearMatMul",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
    "QAttention",
    "MatMulIntegerToFloat",
    "QGemm",
    "QLinearAdd",
    "QLinearMul",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearAveragePool",
    "QLinearGlobalAveragePool",
    "QLinearConcat",
    "QLinearSoftmax",
}
FLOAT16 = 10  # onnx.TensorProto.FLOAT16
