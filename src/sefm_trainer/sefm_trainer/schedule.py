"""The learning-rate schedule Stage 0 and Stage 1 share: linear warm-up, then cosine to a floor.

Warm-up matters most when Stage 1 starts from the base: a full-size first Adam step on a
pretrained model overwrites what pretraining put there before the new heads have any signal.
"""

from __future__ import annotations

import math


def warmup_cosine(peak: float, step: int, warmup: int, total: int, floor: float = 0.1, decay: bool = True) -> float:
    """``peak`` ramped up over ``warmup`` steps, then (if ``decay``) cosine down to ``floor * peak`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if not decay:
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
