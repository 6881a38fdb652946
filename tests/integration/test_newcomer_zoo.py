"""Models nobody here wrote, as a newcomer brings them (random-init, seeded, nothing downloaded): a
transformers encoder from a small config and torchvision's resnet18. Slow: each is a real export."""

import json

import pytest
from conftest import needs_torch, run_cli

pytestmark = [needs_torch, pytest.mark.torch, pytest.mark.slow]

SOURCES = """
import torch

BRIDGE_INPUTS = ["x:float32[batch,3,224,224]"]


def resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def encoder():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return BertModel(cfg)


encoder.bridge_inputs = ["input_ids:int64[batch,seq]", "attention_mask:int64[batch,seq]"]
"""


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    d = tmp_path_factory.mktemp("newcomer_zoo")
    (d / "zoo.py").write_text(SOURCES)
    return d


def _training_notes(path):
    return [n for n in json.loads(path.read_text())["notes"] if "training mode" in n]


def test_a_transformers_encoder_gets_one_note_naming_its_dropout(here):
    res = run_cli("export", "zoo.py:encoder", "-o", "bert", "--quiet", "--search", "0", "--json", "bert.json", cwd=here)
    assert res.returncode == 0, res.stdout + res.stderr
    (note,) = _training_notes(here / "bert.json")
    assert "Dropout x7" in note and "BertModel" not in note  # gradient checkpointing's self.training is no reason
    assert res.stdout.count("training mode") == 1


def test_resnet18_gets_one_note_and_bench_fits_its_budget(here):
    res = run_cli("export", "zoo.py:resnet18", "-o", "resnet", "--quiet", "--search", "0", "--json", "r.json", cwd=here)
    assert res.returncode == 0, res.stdout + res.stderr
    (note,) = _training_notes(here / "r.json")
    assert "BatchNorm2d x20" in note
    res = run_cli(
        "bench", "resnet", "--source", "zoo.py:resnet18", "--latency-seconds", "10", "--json", "b.json", cwd=here
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lat = json.loads((here / "b.json").read_text())["latency"]["cpu"]
    runs = lat["sides"]["native"]["runs"]
    assert runs < 100 and any("timed runs per side instead of 100" in n for n in lat["notes"])
    assert "timing (cpu): round 1/5" in res.stderr and "timing (cpu): round 5/5" in res.stderr
