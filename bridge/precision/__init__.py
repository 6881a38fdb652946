"""Reduced precision: how an int8 or fp16 graph is derived from the verified float32 export (methods,
derive), and how it is judged (quality)."""
