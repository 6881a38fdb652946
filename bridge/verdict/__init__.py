"""The verdict: which inputs are run (plan, inputs, semantics), how outputs are compared (compare, detections,
rounding, policy) and summarised (results, status), and the parity runs (parity)."""
