"""The PaliGemma backbone: a tiny one built in code, or a local pretrained checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    SiglipVisionConfig,
)

from .config import EFMConfig
from .place_pointer import install_place_pointer
from .stem import install_stem
from .vocab import TokenLayout, build_tiny_tokenizer


def tiny_backbone_config(config: EFMConfig, layout: TokenLayout) -> PaliGemmaConfig:
    v, t = config.vision, config.text
    vision = SiglipVisionConfig(
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_layers,
        num_attention_heads=v.num_heads,
        image_size=config.model_image_size,
        patch_size=v.patch_size,
    )
    text = GemmaConfig(
        vocab_size=layout.vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        head_dim=t.head_dim,
        max_position_embeddings=1024,
        pad_token_id=layout.pad,
        bos_token_id=layout.bos,
        eos_token_id=layout.eos,
        tie_word_embeddings=t.tie_embeddings,
    )
    return PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=layout.image,
        vocab_size=layout.vocab_size,
        projection_dim=t.hidden_size,
        hidden_size=t.hidden_size,
        tie_word_embeddings=t.tie_embeddings,
    )


def build_tiny(config: EFMConfig):
    """Random-init tiny backbone and its in-code tokenizer, seeded by ``config.seed``."""
    tokenizer = build_tiny_tokenizer()
    layout = TokenLayout.from_tokenizer(tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        backbone = PaliGemmaForConditionalGeneration(tiny_backbone_config(config, layout))
        install_stem(backbone, config)
        install_place_pointer(backbone, config)
    return backbone, tokenizer


def load_pretrained(path: str | Path):
    """A local PaliGemma directory (weights + tokenizer); nothing is fetched from a hub."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"pretrained_path {path} is not a PaliGemma checkpoint directory (no config.json)")
    backbone = PaliGemmaForConditionalGeneration.from_pretrained(
        path, local_files_only=True, use_safetensors=True, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return backbone, tokenizer


def build_backbone(config: EFMConfig):
    return build_tiny(config) if config.pretrained_path is None else load_pretrained(config.pretrained_path)
