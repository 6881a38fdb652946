"""bridge: export native PyTorch and TensorFlow/Keras models to ONNX and prove the export."""

__version__ = "0.1.0"
