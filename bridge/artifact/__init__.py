"""The artifact under test and its files: bundles (bundle, staging), ONNX files (onnx_file, optimize), bounded
reads of user files (files)."""
