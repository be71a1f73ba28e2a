"""The model's typed config: the EFM, its vision tower and decoder. A wrong value names its key."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from sefm_interfaces.typed_config import StrictModel


class VisionConfig(StrictModel):
    """SigLIP vision tower of the tiny default backbone."""

    hidden_size: int = Field(64, gt=0)
    num_layers: int = Field(2, gt=0)
    num_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(128, gt=0)
    patch_size: int = Field(16, gt=0)
    stem: Literal["patch", "conv"] = Field(
        "patch",
        description="patch: SigLIP's linear patch embedding; conv: stride-2 convolutions down to the patch grid "
        "(slower to start localising objects on our boards: docs/results)",
    )
    stem_channels: int = Field(16, gt=0, description="conv stem: channels of its first layer, doubled per layer")
    coordinates: bool = Field(
        False, description="add each colour channel times the pixel's x and y as input channels (sefm_policy.stem)"
    )

    @model_validator(mode="after")
    def _check_stem(self) -> VisionConfig:
        if self.stem == "conv" and self.patch_size & (self.patch_size - 1):
            raise ValueError(f"the conv stem needs a power-of-two patch_size, got {self.patch_size}")
        return self


class TextConfig(StrictModel):
    """Gemma decoder of the tiny default backbone."""

    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(2, gt=0)
    num_heads: int = Field(2, gt=0)
    num_kv_heads: int = Field(1, gt=0)
    head_dim: int = Field(64, gt=0)
    intermediate_size: int = Field(256, gt=0)
    tie_embeddings: bool = Field(
        True, description="the output head reuses the input embeddings (Gemma's default); false gives it its own"
    )


DEFAULT_IMAGE_SIZE = {"language_table": 96, "aloha": 64}
ALOHA_JOINTS = 14
# ALOHA joint-position range used until a dataset's stats replace it (radians; covers the grippers too).
ALOHA_DEFAULT_LOW = [-math.pi] * ALOHA_JOINTS
ALOHA_DEFAULT_HIGH = [math.pi] * ALOHA_JOINTS


class EFMConfig(StrictModel):
    """Everything needed to rebuild an EFM; saved inside every checkpoint."""

    embodiment: Literal["language_table", "aloha"] = "language_table"
    pretrained_path: str | None = Field(
        None, description="local PaliGemma checkpoint directory; None builds the tiny model in code"
    )
    image_size: int | None = Field(
        None, gt=0, description="model image side in pixels (tiny backbone only); None: 96 LanguageTable, 64 ALOHA"
    )
    pixel_norm: Literal["background", "siglip"] | None = Field(
        None,
        description="background: subtract the training frames' per-pixel mean (the static scene), so what moves "
        "dominates a random-init tower's input; siglip: pixels to [-1, 1] as PaliGemma was trained. "
        "None: background for the tiny backbone, siglip with pretrained_path",
    )
    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()
    seed: int = 0
    joint_low: list[float] | None = Field(None, description="ALOHA joint normalisation stats (14 values)")
    joint_high: list[float] | None = None
    action_chunk: int = Field(5, gt=0, description="ALOHA steps per action chunk")
    patch_positions: bool = Field(
        False,
        description="add a fixed 2-D sine-cosine code of each image token's row and column to its projection "
        "into the decoder, so a place is a linear read-out of the token attended to (sefm_policy.patch_positions)",
    )
    reason: bool = Field(
        False,
        description="LanguageTable: act answers the places of the object, its target and the effector before "
        "the action (tokenizers.GroundedActionTokenizer)",
    )
    place_radices: list[int] = Field(
        [8, 8],
        min_length=1,
        description="with reason: a place's digits, cells per axis at each level, coarse first "
        "(tokenizers.PlaceTokenizer); [6, 4] is the 96 px view's patch, then 4 px within it",
    )
    action_from: Literal["images", "places"] = Field(
        "images",
        description="with reason: what the action's tokens attend to; 'places' decodes them in a second pass "
        "over the prompt and the chain's places, without the images, so the action follows from the places",
    )
    slot_tokens: Literal["shared", "per_slot"] = Field(
        "shared",
        description="action slots' tokens: bin b of any slot is <loc b> (shared), or each slot has its own run of "
        "loc tokens (per_slot; tokenizers.slot_token_ids), so a token says which slot it fills",
    )
    place_reads: Literal["single", "half_patch"] = Field(
        "single",
        description="with action_from: places, how act says the places: single (one greedy read of the images) "
        "or half_patch (the median of five reads, the images as they are and shifted by half a patch each way: "
        "EFM.half_patch_places). Only acting changes; practice that samples the places' coarse digits "
        "(chain_temperature) samples them from the single read (practice_digits)",
    )
    practice_digits: Literal["coarse", "fine"] = Field(
        "coarse",
        description="a reasoning chain's place digits that practice samples and REINFORCE weighs when it samples "
        "places (chain_temperature > 0): coarse (which patch, from one read) or fine (where in the patch, the "
        "patch said as acting says it, e.g. by place_reads' five reads). The 8-block chain's greedy failures are "
        "places read about 2 cm off inside the right patch (docs/results, session 33). A setting of the model, "
        "so every host that loads the checkpoint practises alike",
    )
    place_pointer: bool = Field(
        False,
        description="with action_from: places, each place's coarse row and column are also read as a pointer at "
        "the current frame's image tokens, its scores added to the decoder's logits for them "
        "(sefm_policy.place_pointer); place_radices[0] must be the image's patch grid",
    )
    pointer_word_order: bool = Field(
        False,
        description="with place_pointer, the pointer's query also reads the prompt's words by where they stand "
        "(from the first word and from the last; place_pointer.WordGates), so it can tell the words naming the "
        "block from those naming its target; adds nothing at first, so a trained pointer can take it on",
    )
    snap_places: bool = Field(
        False,
        description="with action_from: places, each place the chain reads moves onto the nearest centre of its kind "
        "that a convolutional centre finder sees in the current frame at 2 px (sefm_policy.object_centres; fitted by "
        "sefm train centres): the chain says which object, the finder where. Acting and d both read the moved "
        "places. For chains whose target is a block (Block2Block)",
    )
    steps_from: Literal["images", "places"] = Field(
        "images",
        description="what the steps-to-go token reads: images (the paper's one pass over the frames and the "
        "instruction) or places (with action_from: places, a pass without the images, told the chain's places "
        "as act says them greedily: d then follows from where the named blocks and the effector are)",
    )
    place_frames: int = Field(
        1,
        ge=1,
        description="with steps_from: places, how many of an episode's frames d pools the places over: each "
        "frame's d is told the median of the places said on it and on the frames read just before it "
        "(sefm_reward.detector), so a single misread does not fire the detector. Acting reads each frame alone",
    )
    steps_per_bin: Literal[1, 2] = Field(
        2,
        description="LanguageTable's steps-to-go bins: 2 steps each (the paper's 50 over 0..100), or 1 (a token a "
        "step, as ALOHA's): a done board, 0 steps to go, then has a token of its own instead of sharing it with "
        "the board a step before, and d can read 0 where success is",
    )
    joint_bins: int = Field(256, gt=1)

    @model_validator(mode="after")
    def _check(self) -> EFMConfig:
        if self.pretrained_path is None and self.model_image_size % self.vision.patch_size:
            raise ValueError(
                f"image_size ({self.model_image_size}) must be a multiple of vision.patch_size "
                f"({self.vision.patch_size})"
            )
        if self.reason and self.embodiment != "language_table":
            raise ValueError("reason is for LanguageTable's planar actions")
        if self.action_from == "places" and not self.reason:
            raise ValueError("action_from: 'places' needs reason: true (the places come from the chain)")
        if self.place_reads == "half_patch" and self.action_from != "places":
            raise ValueError("place_reads: 'half_patch' needs action_from: 'places' (the action told the places read)")
        if self.place_pointer and self.action_from != "places":
            raise ValueError("place_pointer needs action_from: 'places' (it reads the places said over the images)")
        if self.pointer_word_order and not self.place_pointer:
            raise ValueError("pointer_word_order needs place_pointer: true (it orders the pointer's words)")
        if self.snap_places and self.action_from != "places":
            raise ValueError("snap_places needs action_from: 'places' (it moves the places the chain reads)")
        if self.steps_from == "places" and self.action_from != "places":
            raise ValueError("steps_from: 'places' needs action_from: 'places' (d reads the chain's places)")
        if self.place_frames > 1 and self.steps_from != "places":
            raise ValueError("place_frames > 1 needs steps_from: 'places' (d pools the places the chain says)")
        grid = self.model_image_size // self.vision.patch_size
        if self.place_pointer and self.pretrained_path is None and self.place_radices[0] != grid:
            raise ValueError(
                f"place_pointer: place_radices[0] ({self.place_radices[0]}) must be the image's patch grid ({grid})"
            )
        if self.practice_digits == "fine" and (not self.reason or len(self.place_radices) < 2):
            raise ValueError("practice_digits: 'fine' needs reason: true and place_radices of two digits or more")
        if min(self.place_radices) < 2:
            raise ValueError(f"place_radices must each be >= 2, got {self.place_radices}")
        if self.text.num_heads % self.text.num_kv_heads:
            raise ValueError("text.num_heads must be a multiple of text.num_kv_heads")
        for key in ("joint_low", "joint_high"):
            value = getattr(self, key)
            if value is not None and len(value) != ALOHA_JOINTS:
                raise ValueError(f"{key} must list {ALOHA_JOINTS} values, got {len(value)}")
        return self

    @property
    def model_image_size(self) -> int:
        """LanguageTable's top-down board at 96 px (a block 6 px); ALOHA's packed 64 px camera pairs."""
        return self.image_size or DEFAULT_IMAGE_SIZE[self.embodiment]

    @property
    def pixel_normalization(self) -> str:
        return self.pixel_norm or ("siglip" if self.pretrained_path else "background")

    def joint_stats(self) -> tuple[list[float], list[float]]:
        return (self.joint_low or ALOHA_DEFAULT_LOW, self.joint_high or ALOHA_DEFAULT_HIGH)
