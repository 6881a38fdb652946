"""Train one reference model, or write the held-out data for verification.

    python -m models.train NAME OUT_PATH [--seed N] [--epochs N]
        NAME: torch_regression | torch_cnn (OUT_PATH .pt state_dict)
              tf_regression | tf_cnn       (OUT_PATH .keras)
    python -m models.train digits-npz OUT_DIR [--seed N]

Only the framework the named model needs is imported, so torch and TensorFlow never share a
process. Prints one line of JSON metrics on stdout (and keeps it beside the artifact, as
OUT_PATH.metrics.json); framework chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("torch_regression", "torch_cnn", "tf_regression", "tf_cnn")
SUFFIX = {"torch_regression": ".pt", "torch_cnn": ".pt", "tf_regression": ".keras", "tf_cnn": ".keras"}


def write_digits_npz(out_dir, seed: int = 0) -> dict:
    """Held-out inputs (and the training digits, for calibration) as plain (unpickled) .npz/.npy files,
    one array "x" per .npz."""
    from models.data import digits_data, regression_data

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, _, x_test, y_test = digits_data(seed)
    # the training digits: what a static int8 artifact is calibrated on (--calibrate)
    np.savez(out / "digits_train_nchw.npz", x=np.ascontiguousarray(x_train[:, None, :, :], dtype=np.float32))
    np.savez(out / "digits_train_nhwc.npz", x=np.ascontiguousarray(x_train[..., None], dtype=np.float32))
    np.savez(out / "digits_test_nchw.npz", x=np.ascontiguousarray(x_test[:, None, :, :], dtype=np.float32))
    np.savez(out / "digits_test_nhwc.npz", x=np.ascontiguousarray(x_test[..., None], dtype=np.float32))
    np.save(out / "digits_test_labels.npy", y_test.astype(np.int64), allow_pickle=False)
    _, _, xr_test, _ = regression_data(seed)
    np.savez(out / "regression_test.npz", x=xr_test.astype(np.float32))
    return {
        "digits_train": int(len(x_train)),
        "digits_test": int(len(x_test)),
        "regression_test": int(len(xr_test)),
        "out_dir": str(out),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=MODELS + ("digits-npz",))
    parser.add_argument("out", help="artifact path (.pt or .keras), or a directory for digits-npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the model's default epochs")
    args = parser.parse_args(argv)

    if args.name == "digits-npz":
        print(json.dumps({"model": args.name, **write_digits_npz(args.out, args.seed)}))
        return 0
    if Path(args.out).suffix != SUFFIX[args.name]:
        parser.error(f"{args.name} writes a {SUFFIX[args.name]} file, not {args.out}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow; harmless for torch
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout to the one JSON line
        module = importlib.import_module(f"models.{args.name}")
        kwargs = {"seed": args.seed}
        if args.epochs is not None:
            kwargs["epochs"] = args.epochs
        metrics = module.train(args.out, **kwargs)
    seconds = round(time.perf_counter() - start, 2)
    line = json.dumps({"model": args.name, **metrics, "out": str(args.out), "seconds": seconds})
    Path(metrics_path(args.out)).write_text(line + "\n")  # beside the artifact: the reference table reads it
    print(line)
    return 0


def metrics_path(artifact) -> str:
    """Where the training metrics of a reference model's artifact are kept (``ARTIFACT.metrics.json``)."""
    return f"{artifact}.metrics.json"


if __name__ == "__main__":
    sys.exit(main())
