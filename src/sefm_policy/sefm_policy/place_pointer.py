"""A chain's coarse place digits read as a pointer at the current frame's image tokens.

On eight blocks the words name a block by colour and shape, and the chain found that block in a
quarter of held-out steps after 2,400 CPU steps (docs/results, sessions 9 and 15), while a linear
head on the same tower put every block, by identity, in the right patch in 88% after 300
(session 7). The tower sees; what the decoder must learn is to say the row and column numbers of
the token its words match, and the place tokens' loss reaches that token only through attention
weights and the position code in its value. A pointer (Vinyals et al. 2015) scores each image
token against a query from the decoder's state instead: a coarse digit is which token, so matching
the words to a token is all there is to learn, and the loss pushes on that token's score directly.
The scores are added to the decoder's own logits for those digits; finer digits stay the decoder's.

Alone, such a pointer learned in 50 steps to point at *a* block, not at the one named: its misses
fell on the other blocks about as chance would (docs/results, session 19). The decoder's state at a
place slot attends over 288 image tokens and a dozen words. So the query also reads the prompt's
words through an attention of its own, over the prompt tokens alone, as LAVA lets the instruction
attend to the image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import EFMConfig

WIDTH = 64  # query and key width


class PlacePointer(nn.Module):
    """Row logits: the log-sum-exp of a row's token scores; column logits, given the row said: the
    scores of that row's tokens. Together a distribution over the grid's tokens, said as PlaceTokenizer
    writes a patch (row first)."""

    def __init__(self, hidden_size: int, grid: int, width: int = WIDTH) -> None:
        super().__init__()
        self.grid = grid
        self.words = nn.MultiheadAttention(hidden_size, 4 if hidden_size % 4 == 0 else 1, batch_first=True)
        self.query = nn.Linear(hidden_size, width)
        self.key = nn.Linear(hidden_size, width)

    def keys(self, image_states: torch.Tensor) -> torch.Tensor:
        """(B, grid * grid, hidden) decoder states of the current frame's tokens -> (B, grid * grid, width)."""
        if image_states.shape[1] != self.grid**2:
            raise ValueError(f"the pointer reads a {self.grid} x {self.grid} grid, got {image_states.shape[1]} tokens")
        return self.key(image_states)

    def logits(self, states: torch.Tensor, keys: torch.Tensor, words, rows: torch.Tensor | None = None):
        """(B, hidden) states saying a coarse digit -> (B, grid): a row's logits, or with ``rows`` (B,)
        the row already said, a column's. ``words``: the prompt's states (B, L, hidden) and which of
        them are words (B, L)."""
        prompt, present = words
        read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
        scores = torch.einsum("bw,bpw->bp", self.query(states + read[:, 0]), keys) / math.sqrt(keys.shape[-1])
        scores = scores.view(-1, self.grid, self.grid)
        if rows is None:
            return scores.logsumexp(-1)
        return scores[torch.arange(len(rows), device=rows.device), rows]


def install_place_pointer(backbone, config: EFMConfig) -> None:
    """Give ``backbone`` its pointer (a submodule, so the checkpoint's weights carry it) when the
    config asks for one and it has none; take it away when the config does not."""
    if not config.place_pointer:
        if hasattr(backbone, "place_pointer"):
            del backbone.place_pointer
        return
    if hasattr(backbone, "place_pointer"):
        return
    vision = backbone.config.vision_config
    grid = int(vision.image_size) // int(vision.patch_size)
    if config.place_radices[0] != grid:
        raise ValueError(
            f"place_pointer: place_radices[0] ({config.place_radices[0]}) must be the image's patch grid ({grid})"
        )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        backbone.place_pointer = PlacePointer(backbone.config.text_config.hidden_size, grid)
