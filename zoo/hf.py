"""Hugging Face transformers factories for the coverage zoo (``zoo/coverage.toml``).

Every model is built from a small config (2 layers, hidden size 32 to 64, a 1000-word vocabulary)
with seeded random weights: nothing is downloaded, and no tokenizer is needed (bridge generates the
ids, the attention masks and the pixel/audio values from the declared inputs).

Each factory returns a thin wrapper whose ``forward`` takes the named tensors a deployment feeds
(``input_ids``, ``attention_mask``, ``pixel_values``, ``input_values``, ``input_features``,
``decoder_input_ids``) and returns a dict of the model's tensor outputs (``last_hidden_state``,
``pooler_output``, ...): bridge binds inputs by ``forward``'s parameter names and names the ONNX
outputs after the dict's keys. Models that would return a key/value cache are built with
``use_cache=False``. The inputs are declared on each factory (``bridge_inputs``, and
``bridge_dim_min`` where an axis has a smallest valid size), so no ``--input`` is needed:

    bridge export zoo/hf.py:bert -o build/bert

Ids get their range from the embedding they feed, attention masks are generated so that every row
attends somewhere, and padded positions are not compared (bridge/verdict/semantics.py).
"""

from __future__ import annotations

import torch
from torch import nn

SEED = 0

VOCAB = 1000
HIDDEN = 64
LAYERS = 2
HEADS = 4
FFN = 128
POSITIONS = 128

TEXT = ["input_ids:int64[batch,seq]", "attention_mask:int64[batch,seq]"]
IDS_ONLY = ["input_ids:int64[batch,seq]"]
SEQ2SEQ = ["input_ids:int64[batch,seq]", "attention_mask:int64[batch,seq]", "decoder_input_ids:int64[batch,tgt]"]
IMAGE_SIZE = 32


def _tensors(out) -> dict:
    """The tensor fields of a transformers ModelOutput (hidden states and attentions are off)."""
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


class TextModel(nn.Module):
    """input_ids and attention_mask in, the model's tensor outputs out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return _tensors(self.model(input_ids=input_ids, attention_mask=attention_mask))


class IdsModel(nn.Module):
    """input_ids only (models whose forward has no attention mask)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> dict:
        return _tensors(self.model(input_ids=input_ids))


class Seq2SeqModel(nn.Module):
    """Encoder-decoder: source ids and mask, decoder ids (teacher forcing, no cache)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoder_input_ids: torch.Tensor) -> dict:
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, use_cache=False
        )
        return _tensors(out)


class VisionModel(nn.Module):
    """pixel_values (NCHW) in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> dict:
        return _tensors(self.model(pixel_values=pixel_values))


class AudioModel(nn.Module):
    """Raw waveform (input_values, batch x samples) in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> dict:
        return _tensors(self.model(input_values=input_values))


class FeaturesModel(nn.Module):
    """Log-mel features (input_features, batch x mels x frames) in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_features: torch.Tensor) -> dict:
        return _tensors(self.model(input_features=input_features))


def _build(make, wrapper=TextModel) -> nn.Module:
    """Seeded construction (the caller's RNG is left as it was), eval mode, wrapped."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = make()
    return wrapper(model.eval()).eval()


def _text(config_name: str, model_name: str, wrapper=TextModel, **config) -> nn.Module:
    import transformers

    cfg = getattr(transformers, config_name)(**config)
    return _build(lambda: getattr(transformers, model_name)(cfg), wrapper)


BERT_LIKE = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    intermediate_size=FFN,
    max_position_embeddings=POSITIONS,
)
DECODER = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    intermediate_size=FFN,
    max_position_embeddings=POSITIONS,
    use_cache=False,
)


# -- encoders over token ids ---------------------------------------------------------------------
def bert():
    return _text("BertConfig", "BertModel", **BERT_LIKE)


def distilbert():
    return _text(
        "DistilBertConfig",
        "DistilBertModel",
        vocab_size=VOCAB,
        dim=HIDDEN,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=FFN,
        max_position_embeddings=POSITIONS,
    )


def roberta():
    # RoBERTa's positions start after the padding index: max_position_embeddings = POSITIONS + 2
    return _text("RobertaConfig", "RobertaModel", **{**BERT_LIKE, "max_position_embeddings": POSITIONS + 2})


def xlm_roberta():
    return _text("XLMRobertaConfig", "XLMRobertaModel", **{**BERT_LIKE, "max_position_embeddings": POSITIONS + 2})


def albert():
    return _text("AlbertConfig", "AlbertModel", **BERT_LIKE, embedding_size=32)


def electra():
    return _text("ElectraConfig", "ElectraModel", **BERT_LIKE, embedding_size=32)


def deberta_v2():
    return _text("DebertaV2Config", "DebertaV2Model", **BERT_LIKE)


def mobilebert():
    return _text(
        "MobileBertConfig",
        "MobileBertModel",
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=POSITIONS,
        embedding_size=32,
        intra_bottleneck_size=32,
        true_hidden_size=32,
        num_feedforward_networks=2,
    )


def mpnet():
    return _text("MPNetConfig", "MPNetModel", **{**BERT_LIKE, "max_position_embeddings": POSITIONS + 2})


def convbert():
    return _text("ConvBertConfig", "ConvBertModel", **BERT_LIKE, embedding_size=HIDDEN)


def modernbert():
    return _text(
        "ModernBertConfig",
        "ModernBertModel",
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=POSITIONS,
        local_attention=16,
        global_attn_every_n_layers=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    )


def t5_encoder():
    return _text(
        "T5Config",
        "T5EncoderModel",
        vocab_size=VOCAB,
        d_model=HIDDEN,
        d_kv=16,
        d_ff=FFN,
        num_layers=LAYERS,
        num_heads=HEADS,
        use_cache=False,
    )


def clip_text():
    return _text(
        "CLIPTextConfig",
        "CLIPTextModel",
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=POSITIONS,
        projection_dim=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


# -- decoders (causal language models, no cache) ---------------------------------------------
def gpt2():
    return _text(
        "GPT2Config",
        "GPT2Model",
        vocab_size=VOCAB,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        n_positions=POSITIONS,
        n_inner=FFN,
        bos_token_id=1,
        eos_token_id=2,
        use_cache=False,
    )


def llama():
    return _text("LlamaConfig", "LlamaModel", **DECODER, num_key_value_heads=2)


def mistral():
    return _text("MistralConfig", "MistralModel", **DECODER, num_key_value_heads=2, sliding_window=None)


def qwen2():
    return _text("Qwen2Config", "Qwen2Model", **DECODER, num_key_value_heads=2)


def qwen3():
    return _text("Qwen3Config", "Qwen3Model", **DECODER, num_key_value_heads=2, head_dim=16)


def gemma():
    return _text("GemmaConfig", "GemmaModel", **DECODER, num_key_value_heads=1, head_dim=16)


def phi():
    return _text("PhiConfig", "PhiModel", **DECODER)


def phi3():
    return _text("Phi3Config", "Phi3Model", **DECODER, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def gpt_neox():
    return _text("GPTNeoXConfig", "GPTNeoXModel", **DECODER)


def opt():
    return _text(
        "OPTConfig",
        "OPTModel",
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        ffn_dim=FFN,
        max_position_embeddings=POSITIONS,
        word_embed_proj_dim=HIDDEN,
        use_cache=False,
    )


def bloom():
    return _text(
        "BloomConfig", "BloomModel", vocab_size=VOCAB, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS, use_cache=False
    )


def falcon():
    return _text(
        "FalconConfig",
        "FalconModel",
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        use_cache=False,
        new_decoder_architecture=False,
        multi_query=True,
        alibi=False,
        max_position_embeddings=POSITIONS,
    )


def stablelm():
    return _text("StableLmConfig", "StableLmModel", **DECODER, num_key_value_heads=HEADS)


# -- encoder-decoders ------------------------------------------------------------------------
def bart():
    return _text(
        "BartConfig",
        "BartModel",
        Seq2SeqModel,
        vocab_size=VOCAB,
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=FFN,
        decoder_ffn_dim=FFN,
        max_position_embeddings=POSITIONS,
        use_cache=False,
    )


def t5():
    return _text(
        "T5Config",
        "T5Model",
        Seq2SeqModel,
        vocab_size=VOCAB,
        d_model=HIDDEN,
        d_kv=16,
        d_ff=FFN,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_heads=HEADS,
        use_cache=False,
    )


def _declare(inputs: list[str], *factories, **extra) -> None:
    """Each factory's inputs (``bridge_inputs``) and other declarations (``bridge_dim_min``, ...)."""
    for f in factories:
        f.bridge_inputs = inputs
        for key, value in extra.items():
            setattr(f, f"bridge_{key}", value)


_declare(
    TEXT,
    bert,
    distilbert,
    roberta,
    xlm_roberta,
    albert,
    electra,
    deberta_v2,
    mobilebert,
    mpnet,
    convbert,
    modernbert,
    t5_encoder,
    clip_text,
    gpt2,
    llama,
    mistral,
    qwen2,
    qwen3,
    gemma,
    phi,
    phi3,
    gpt_neox,
    opt,
    bloom,
    falcon,
    stablelm,
)
_declare(SEQ2SEQ, bart, t5)


# -- vision encoders -------------------------------------------------------------------------
VISION = dict(
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    intermediate_size=FFN,
    image_size=IMAGE_SIZE,
    patch_size=8,
)


def vit():
    return _text("ViTConfig", "ViTModel", VisionModel, **VISION)


def deit():
    return _text("DeiTConfig", "DeiTModel", VisionModel, **VISION)


def beit():
    return _text(
        "BeitConfig", "BeitModel", VisionModel, **VISION, use_mask_token=False, use_relative_position_bias=True
    )


def dinov2():
    return _text("Dinov2Config", "Dinov2Model", VisionModel, **VISION, mlp_ratio=2)


def clip_vision():
    return _text("CLIPVisionConfig", "CLIPVisionModel", VisionModel, **VISION, projection_dim=32)


def siglip_vision():
    return _text("SiglipVisionConfig", "SiglipVisionModel", VisionModel, **VISION)


def swin():
    return _text(
        "SwinConfig",
        "SwinModel",
        VisionModel,
        image_size=IMAGE_SIZE,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 4],
        window_size=4,
    )


def convnext():
    return _text(
        "ConvNextConfig",
        "ConvNextModel",
        VisionModel,
        num_channels=3,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        image_size=IMAGE_SIZE,
    )


def segformer():
    return _text(
        "SegformerConfig",
        "SegformerModel",
        VisionModel,
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        num_attention_heads=[1, 2],
        decoder_hidden_size=32,
    )


def resnet_hf():
    return _text(
        "ResNetConfig",
        "ResNetModel",
        VisionModel,
        embedding_size=16,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
    )


# position embeddings are built for IMAGE_SIZE: height and width are fixed, the batch is dynamic
_declare(
    [f"pixel_values:float32[batch,3,{IMAGE_SIZE},{IMAGE_SIZE}]"],
    vit,
    deit,
    beit,
    dinov2,
    clip_vision,
    siglip_vision,
    swin,
    convnext,
    segformer,
    resnet_hf,
)


# -- speech ----------------------------------------------------------------------------------
AUDIO = dict(
    hidden_size=32,
    num_hidden_layers=LAYERS,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16, 16),
    conv_stride=(5, 2, 2),
    conv_kernel=(10, 3, 3),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def wav2vec2():
    return _text("Wav2Vec2Config", "Wav2Vec2Model", AudioModel, **AUDIO)


def hubert():
    return _text("HubertConfig", "HubertModel", AudioModel, **AUDIO)


# The sweep must not give the waveform fewer samples than the feature encoder needs for a few frames:
# wav2vec2's published configs (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2) need 400 for one; this
# small config needs 40, and 400 (25 ms at 16 kHz) keeps the sweep on realistic lengths.
_declare(["input_values:float32[batch,samples]"], wav2vec2, hubert, dim_min={"samples": 400})

WHISPER_MELS = 16
WHISPER_FRAMES = 64  # = 2 * max_source_positions: Whisper's encoder accepts exactly this many frames


def whisper_encoder():
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = transformers.WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=WHISPER_MELS,
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=FFN,
        decoder_layers=LAYERS,
        decoder_attention_heads=HEADS,
        decoder_ffn_dim=FFN,
        max_source_positions=WHISPER_FRAMES // 2,
        max_target_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
        begin_suppress_tokens=None,
        use_cache=False,
    )
    return _build(lambda: WhisperEncoder(cfg), FeaturesModel)


whisper_encoder.bridge_inputs = [f"input_features:float32[batch,{WHISPER_MELS},{WHISPER_FRAMES}]"]
