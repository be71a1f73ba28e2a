"""EFM checkpoints: safetensors weights + JSON configs + tokenizer files, never pickle.

A checkpoint is written whole into a hidden temporary directory next to its target and
renamed into place, so a crash mid-save never leaves a half checkpoint where the loader
looks. ``manifest.json`` lists every file with its size and SHA-256: a truncated or
tampered file is caught before anything is deserialised, and the error names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import safetensors
import safetensors.torch
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PreTrainedTokenizerFast

from sefm_interfaces.typed_config import UsageError, parse_config

from .config import EFMConfig
from .model import EFM
from .object_centres import install_object_centres
from .place_pointer import install_place_pointer
from .stem import install_stem

FORMAT = "sefm-efm/1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
BACKGROUND = "background.safetensors"  # the per-pixel scene mean of "background" pixel normalisation
EFM_CONFIG = "efm_config.json"
BACKBONE_CONFIG = "backbone_config.json"
TOKENIZER = "tokenizer.json"


class CheckpointError(UsageError):
    """A checkpoint is missing, incomplete or altered; the message names the file."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(model: EFM, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; ``metadata`` (JSON-able, e.g. version, step) goes in the manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        safetensors.torch.save_model(model.backbone, str(tmp / WEIGHTS))
        safetensors.torch.save_file({"background": model.background.detach().cpu().contiguous()}, str(tmp / BACKGROUND))
        (tmp / EFM_CONFIG).write_text(model.config.model_dump_json(indent=2))
        (tmp / BACKBONE_CONFIG).write_text(json.dumps(model.backbone.config.to_dict(), indent=2, default=str))
        model.tokenizer.save_pretrained(str(tmp))
        files = {}
        for f in sorted(p for p in tmp.iterdir() if p.is_file()):
            _fsync(f)
            files[f.name] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
        manifest = {"format": FORMAT, "files": files, "metadata": metadata or {}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync(tmp / MANIFEST)
        _fsync(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(old)
        tmp.rename(path)
        _fsync(path.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict:
    """Check every listed file's size and hash; return the manifest."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a directory")
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{mpath}: missing; {path} is not a complete sefm checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{mpath}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"{mpath}: unknown format {manifest.get('format') if isinstance(manifest, dict) else '?'!r}"
        )
    for name in (WEIGHTS, EFM_CONFIG, BACKBONE_CONFIG):
        if name not in manifest["files"]:
            raise CheckpointError(f"{mpath}: does not list {name}")
    for name, info in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        size = f.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"{f}: truncated or altered ({size} bytes, manifest says {info['bytes']})")
        if file_sha256(f) != info["sha256"]:
            raise CheckpointError(f"{f}: contents do not match the manifest's SHA-256 (tampered or corrupt)")
    return manifest


def load_checkpoint(path: str | Path, device: str = "cpu") -> EFM:
    path = Path(path)
    read_manifest(path)
    try:
        config = parse_config(json.loads((path / EFM_CONFIG).read_text()), EFMConfig, str(path / EFM_CONFIG))
        backbone_config = PaliGemmaConfig.from_dict(json.loads((path / BACKBONE_CONFIG).read_text()))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: config files cannot be read ({err})") from None
    backbone = PaliGemmaForConditionalGeneration(backbone_config)
    install_stem(backbone, config)
    install_place_pointer(backbone, config)
    install_object_centres(backbone, config.snap_places, config.seed)
    try:
        missing, unexpected = safetensors.torch.load_model(backbone, str(path / WEIGHTS), strict=False, device=device)
    except (safetensors.SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{path / WEIGHTS}: cannot be loaded ({err})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{path / WEIGHTS}: does not match the config (missing {missing}, unexpected {unexpected})"
        )
    if not (path / TOKENIZER).is_file():
        raise CheckpointError(f"{path / TOKENIZER}: missing; the checkpoint's tokenizer cannot be loaded")
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path / TOKENIZER}: cannot be loaded ({err})") from None
    model = EFM(config, backbone, tokenizer)
    if (path / BACKGROUND).is_file():
        model.background.copy_(safetensors.torch.load_file(str(path / BACKGROUND))["background"])
    elif config.pixel_normalization == "background":
        raise CheckpointError(
            f"{path}: no {BACKGROUND}, but pixel_norm is 'background' (a checkpoint from before background "
            "normalisation: retrain it, or set pixel_norm: siglip in its efm_config.json)"
        )
    return model.to(device).eval()


def load_vision_tower(model: EFM, path: str | Path) -> None:
    """Copy a checkpoint's vision tower (and its background) into ``model``, whose decoder stays
    as built: a bigger decoder starts on a tower that already sees, as PaliGemma's started on SigLIP."""
    source = load_checkpoint(path)
    theirs, ours = source.config, model.config
    if (theirs.vision, theirs.image_size, theirs.pixel_normalization) != (
        ours.vision,
        ours.image_size,
        ours.pixel_normalization,
    ):
        raise CheckpointError(
            f"{path}: its vision tower (vision {theirs.vision.model_dump()}, image_size {theirs.image_size}, "
            f"pixel_norm {theirs.pixel_normalization}) differs from the model's (vision {ours.vision.model_dump()}, "
            f"image_size {ours.image_size}, pixel_norm {ours.pixel_normalization})"
        )
    model.backbone.model.vision_tower.load_state_dict(source.backbone.model.vision_tower.state_dict())
    model.background.copy_(source.background)
