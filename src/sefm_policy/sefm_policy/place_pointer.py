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

That attention has no order: its keys are the prompt's last states, and Gemma's positions live in
its rotary attention, not in those states. In "push the red moon to the blue star" a read of the
words cannot tell which shape word names the block and which its target, unless the decoder has
learned to write each word's role into its state. A Stage 0 base had not: a linear probe finds the
named block's colour in its pointer's query in every case and its shape in half (both shape words,
read alike), where the Stage 1 pointer that acts finds both (docs/results, session 29). With
``pointer_word_order`` the query also reads the words by where they stand (``WordGates``). Order
added to that attention's keys, or a second attention given it, taught the block's shape word and
never the target's (the first's heads sat on the target's colour word with saturated weights).
Gates, one per word and none competing, taught both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import EFMConfig
from .prompts import MAX_PROMPT_TOKENS

WIDTH = 64  # query and key width


class WordGates(nn.Module):
    """The prompt's words read by where they stand: each word's gate is a sigmoid of the slot's state
    read at the word's index from the prompt's first word and from its last, so a slot can take the
    words that name its block wherever the instruction puts them, and no word competes with another
    for the read. What the gates pass goes through a map that starts at zero."""

    def __init__(self, hidden_size: int, positions: int = MAX_PROMPT_TOKENS) -> None:
        super().__init__()
        self.from_first = nn.Linear(hidden_size, positions)
        self.from_last = nn.Linear(hidden_size, positions)
        self.value = nn.Linear(hidden_size, hidden_size)
        nn.init.zeros_(self.value.weight)
        nn.init.zeros_(self.value.bias)

    def forward(self, states: torch.Tensor, prompt: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, hidden) slot states, the prompt's states (B, L, hidden) and its word mask (B, L) -> (B, hidden)."""
        top = self.from_first.out_features - 1
        first = (present.long().cumsum(-1) - 1).clamp(0, top)
        last = (present.long().sum(-1, keepdim=True) - 1 - first).clamp(0, top)
        logits = self.from_first(states).gather(-1, first) + self.from_last(states).gather(-1, last)
        gates = torch.sigmoid(logits) * present
        return self.value((gates[..., None] * prompt).sum(1))


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

    def order_words(self) -> None:
        """Let the query read the words by where they stand too (``pointer_word_order``)."""
        self.word_gates = WordGates(self.query.in_features).to(self.query.weight.device)

    @property
    def ordered(self) -> bool:
        return hasattr(self, "word_gates")

    def keys(self, image_states: torch.Tensor) -> torch.Tensor:
        """(B, grid * grid, hidden) decoder states of the current frame's tokens -> (B, grid * grid, width)."""
        if image_states.shape[1] != self.grid**2:
            raise ValueError(f"the pointer reads a {self.grid} x {self.grid} grid, got {image_states.shape[1]} tokens")
        return self.key(image_states)

    def queries(self, states: torch.Tensor, words) -> torch.Tensor:
        """(B, hidden) states saying a coarse digit, and the prompt's (states, word mask) -> (B, width)."""
        prompt, present = words
        read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
        read = read[:, 0] + self.word_gates(states, prompt, present) if self.ordered else read[:, 0]
        return self.query(states + read)

    def logits(self, states: torch.Tensor, keys: torch.Tensor, words, rows: torch.Tensor | None = None):
        """(B, hidden) states saying a coarse digit -> (B, grid): a row's logits, or with ``rows`` (B,)
        the row already said, a column's. ``words``: the prompt's states (B, L, hidden) and which of
        them are words (B, L)."""
        scores = torch.einsum("bw,bpw->bp", self.queries(states, words), keys) / math.sqrt(keys.shape[-1])
        scores = scores.view(-1, self.grid, self.grid)
        if rows is None:
            return scores.logsumexp(-1)
        return scores[torch.arange(len(rows), device=rows.device), rows]


def install_place_pointer(backbone, config: EFMConfig) -> None:
    """Give ``backbone`` the pointer the config asks for (a submodule, so the checkpoint's weights
    carry it) when it has none, or its words' order when it lacks that; take away what the config
    does not ask for."""
    if not config.place_pointer:
        if hasattr(backbone, "place_pointer"):
            del backbone.place_pointer
        return
    if hasattr(backbone, "place_pointer"):
        pointer = backbone.place_pointer
        if config.pointer_word_order and not pointer.ordered:
            with torch.random.fork_rng():
                torch.manual_seed(config.seed)
                pointer.order_words()
        elif pointer.ordered and not config.pointer_word_order:
            del pointer.word_gates
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
        if config.pointer_word_order:
            backbone.place_pointer.order_words()
