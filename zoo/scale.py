"""The deployment-scale zoo's PyTorch factories (``zoo/scale.toml``): models at the sizes people deploy,
random and seeded (nothing is downloaded), each with its inputs and what their values mean declared.

- ``bert_base``: BERT-base (12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 30522) over
  ``input_ids`` and ``attention_mask`` at sequence 128; ``last_hidden_state`` and ``pooler_output`` out.
- ``vit_b_16``: torchvision's ViT-B/16 at 224x224 (its zero-initialised head given a seeded init),
  pixels as ImageNet-normalised values.
- ``resnet50``: torchvision's ResNet-50 at 224x224, BatchNorm statistics from seeded batches of its
  declared inputs.
- ``whisper_base_encoder``: the encoder of Whisper-base (6 layers, d_model 512, 8 heads, FFN 2048)
  over 80 log-mel bins by 3000 frames (30 s of audio), values in Whisper's normalised range.
- ``gpt2_decode_step``: GPT-2 small (12 layers, hidden 768, 12 heads, vocabulary 50257) decoding one
  token with a key/value cache of 128 positions: ``input_ids`` (one token), ``attention_mask`` over
  the 129 positions, ``past`` (every layer's keys and values, one tensor); ``logits`` and the grown
  cache ``present`` out.
- ``lstm_lm``: an LSTM language model (embedding 512, 2 layers of 1024, vocabulary 10000) over 64
  tokens, next-token logits at every position out.

Random weights make some references weak (a random ResNet's logits move little between inputs): the
zoo says so rather than loosening a check. The two reference digits CNNs (trained, with real digits)
are in the config beside these.
"""

from __future__ import annotations

import torch
from _zoo_shared import speed_zoo
from torch import nn

SEED = 0
SEQ = 128
PAST = 128


def _seeded(make) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = make()
    return model.eval()


# -- BERT-base -------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """input_ids and attention_mask in, the encoder's hidden states and pooled output out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}


def bert_base() -> nn.Module:
    import transformers

    cfg = transformers.BertConfig()  # bert-base-uncased's shape: 12 x 768, 12 heads, FFN 3072, 30522 words
    cfg.attn_implementation = "eager"
    return _seeded(lambda: Encoder(transformers.BertModel(cfg, add_pooling_layer=True)))


bert_base.bridge_inputs = [f"input_ids:int64[batch,{SEQ}]", f"attention_mask:int64[batch,{SEQ}]"]
bert_base.bridge_input_kinds = {"input_ids": "index", "attention_mask": "mask"}


# -- vision ----------------------------------------------------------------------------------------
def vit_b_16() -> nn.Module:
    return speed_zoo("zoo_models").vit_b_16()


# ImageNet-normalised pixels: (0 - 0.485) / 0.229 .. (1 - 0.406) / 0.225
LOW, HIGH = -2.12, 2.64
PIXELS = {"x": f"{LOW}:{HIGH}"}


def resnet50() -> nn.Module:
    """torchvision's ResNet-50, its BatchNorm statistics those of the activations its declared inputs
    give (two seeded batches of 4 drawn over the pixel range, in train mode): statistics from another
    distribution left its logits near 800 and every layer off its working range."""
    import torchvision.models as tvm

    def build():
        model = tvm.resnet50(weights=None)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.empty(4, 3, 224, 224).uniform_(LOW, HIGH))
        return model

    return _seeded(build)


for _f in (vit_b_16, resnet50):
    _f.bridge_inputs = ["x:float32[batch,3,224,224]"]
    _f.bridge_input_ranges = PIXELS


# -- Whisper-base encoder --------------------------------------------------------------------------
MELS, FRAMES = 80, 3000


class WhisperEncoderOnly(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features=input_features).last_hidden_state


def whisper_base_encoder() -> nn.Module:
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = transformers.WhisperConfig(
        num_mel_bins=MELS,
        d_model=512,
        encoder_layers=6,
        encoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_layers=6,
        decoder_attention_heads=8,
        decoder_ffn_dim=2048,
        max_source_positions=FRAMES // 2,
    )
    cfg._attn_implementation = "eager"
    return _seeded(lambda: WhisperEncoderOnly(WhisperEncoder(cfg)))


whisper_base_encoder.bridge_inputs = [f"input_features:float32[batch,{MELS},{FRAMES}]"]
# Whisper's features: log10 mel power clamped to 8 below its maximum, then (x + 4) / 4
whisper_base_encoder.bridge_input_ranges = {"input_features": "-1:1.5"}


# -- GPT-2 small, one decoding step with a key/value cache ------------------------------------------
GPT2_LAYERS, GPT2_HEADS, GPT2_HEAD_DIM = 12, 12, 64


class DecodeStep(nn.Module):
    """One token through GPT-2 with the cache of ``PAST`` positions: ``past`` holds every layer's key
    and value, (batch, 2 * layers, heads, past, head_dim); ``present`` is the cache with this token."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, past: torch.Tensor) -> dict:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache()
        for layer in range(GPT2_LAYERS):
            cache.update(past[:, 2 * layer], past[:, 2 * layer + 1], layer)
        length = attention_mask.shape[1]
        positions = torch.arange(length - 1, length, device=input_ids.device).unsqueeze(0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions.expand(input_ids.shape[0], 1),
            cache=cache,
            use_cache=True,
        )
        present = out.cache
        layers = [torch.stack([present.layers[i].keys, present.layers[i].values], 1) for i in range(GPT2_LAYERS)]
        return {"logits": out.logits, "present": torch.cat(layers, 1)}


def gpt2_decode_step() -> nn.Module:
    import transformers

    cfg = transformers.GPT2Config()  # gpt2 (small): 12 x 768, 12 heads, 1024 positions, 50257 words
    cfg._attn_implementation = "eager"
    return _seeded(lambda: DecodeStep(transformers.GPT2LMHeadModel(cfg)))


gpt2_decode_step.bridge_inputs = [
    "input_ids:int64[batch,1]",
    f"attention_mask:int64[batch,{PAST + 1}]",
    f"past:float32[batch,{2 * GPT2_LAYERS},{GPT2_HEADS},{PAST},{GPT2_HEAD_DIM}]",
]
gpt2_decode_step.bridge_input_kinds = {"input_ids": "index", "attention_mask": "mask", "past": "values"}
# keys and values as GPT-2's projections of layer-normalised activations give them
gpt2_decode_step.bridge_input_ranges = {"past": "-3:3"}


# -- an LSTM language model --------------------------------------------------------------------------
LSTM_VOCAB, LSTM_SEQ = 10000, 64


class LSTMLanguageModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(LSTM_VOCAB, 512)
        self.lstm = nn.LSTM(512, 1024, num_layers=2, batch_first=True)
        self.head = nn.Linear(1024, LSTM_VOCAB)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(input_ids))
        return self.head(out)


def lstm_lm() -> nn.Module:
    return _seeded(LSTMLanguageModel)


lstm_lm.bridge_inputs = [f"input_ids:int64[batch,{LSTM_SEQ}]"]
lstm_lm.bridge_input_kinds = {"input_ids": "index"}
