"""More decoder layers for a trained model, without forgetting what it does (block expansion).

A small decoder that reads its places well may lack the depth to act from them (on four blocks
the 2 x 128 decoder acts from true places in 35%, the 4 x 192 one in 97%), and a fresh bigger
decoder must learn to see again. LLaMA Pro's block expansion keeps both: each inserted layer
starts with zero output projections (attention ``o_proj`` and MLP ``down_proj``), so it adds
nothing to the residual stream and the deepened model computes exactly what the checkpoint did,
while the gradient through those projections is not zero and the layer learns from step one.
Measured on four blocks (docs/results, session 10): 2 x 128 -> 6 x 128 sharpened the places and
gave a better steps-to-go model, but acted from true places no better (28-36%); there the 4 x 192
decoder's width is what acts.
"""

from __future__ import annotations

import re

import torch
from transformers import PaliGemmaForConditionalGeneration

from sefm_interfaces.typed_config import ConfigError

from .model import EFM
from .object_centres import install_object_centres
from .place_pointer import install_place_pointer
from .stem import install_stem

LAYER = re.compile(r"^(model\.language_model\.layers\.)(\d+)(\..*)$")
SILENT = ("self_attn.o_proj.weight", "mlp.down_proj.weight")


def layer_order(old: int, added: int) -> list[int | None]:
    """Where each layer of the deepened stack comes from: an old layer's index, or None for an
    inserted one. Inserted layers follow the old ones as evenly as they divide, the first old
    layers taking the remainder."""
    order: list[int | None] = []
    for i in range(old):
        order += [i] + [None] * (added // old + (i < added % old))
    return order


def deepened(model: EFM, layers: int, seed: int = 0) -> EFM:
    """``model`` with ``layers`` identity decoder layers inserted after its own (see the module)."""
    if layers < 1:
        raise ConfigError(f"deepen: layers to insert must be >= 1, got {layers}")
    if model.config.pretrained_path is not None:
        raise ConfigError("deepen: applies to the tiny backbone built in code, not a pretrained_path checkpoint")
    old = model.config.text.num_layers
    text = model.config.text.model_copy(update={"num_layers": old + layers})
    config = model.config.model_copy(update={"text": text})
    backbone_config = model.backbone.config
    backbone_config = type(backbone_config).from_dict(backbone_config.to_dict())
    backbone_config.text_config.num_hidden_layers = old + layers
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = PaliGemmaForConditionalGeneration(backbone_config)
    install_stem(backbone, config)
    install_place_pointer(backbone, config)
    install_object_centres(backbone, config.snap_places, config.seed)
    state = backbone.state_dict()
    source = {new: old_index for new, old_index in enumerate(layer_order(old, layers)) if old_index is not None}
    inverse = {old_index: new for new, old_index in source.items()}
    for name, tensor in model.backbone.state_dict().items():
        match = LAYER.match(name)
        if match:
            name = f"{match[1]}{inverse[int(match[2])]}{match[3]}"
        state[name] = tensor
    for new in set(range(old + layers)) - set(source):
        for suffix in SILENT:
            state[f"model.language_model.layers.{new}.{suffix}"] = torch.zeros_like(
                state[f"model.language_model.layers.{new}.{suffix}"]
            )
    backbone.load_state_dict(state)
    deep = EFM(config, backbone, model.tokenizer)
    deep.background.copy_(model.background)
    return deep.to(model.device)
