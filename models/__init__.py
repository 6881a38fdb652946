"""Reference models (PyTorch and Keras) that bridge exports to ONNX and verifies."""
