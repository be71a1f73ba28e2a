"""The token vocabulary: a tiny tokenizer built in code, and where the special tokens live.

Bins are mapped onto PaliGemma's reserved ``<locNNNN>`` tokens, in the tiny vocabulary
as in a real PaliGemma one, so both take the same code path; ids are always looked up
by token string, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

NUM_LOC_TOKENS = 1024
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>", "\n"]

# Words of the prompts and of the simulated tasks' instruction templates (LanguageTable,
# BananaTable, ALOHA). Anything else becomes <unk> in the tiny model.
BASE_WORDS = [
    *"act steps go instruction state what did robot do".split(),
    *"push move slide put nudge bring insert pick place grasp lift".split(),
    *"to towards toward close next near into onto on in of at from by with and the a an it its".split(),
    *"red blue green yellow cube moon star pentagon block blocks banana peg socket".split(),
    *"table left right top bottom center centre middle corner side upper lower".split(),
    *", . : ; - ' ?".split(),
    # Stage 0's grounding questions and the colours of its varied scenes.
    *"point name nearest is yes no above below goal effector where which list objects".split(),
    *"orange purple pink white black cyan brown grey".split(),
]


def loc_token(i: int) -> str:
    return f"<loc{i:04d}>"


def build_tiny_tokenizer(extra_words: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """Word-level tokenizer (lower-cased, punctuation split) over the task vocabulary."""
    words = list(dict.fromkeys([*BASE_WORDS, *(w.lower() for w in extra_words)]))
    vocab_list = SPECIAL_TOKENS + words + [loc_token(i) for i in range(NUM_LOC_TOKENS)]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


@dataclass(frozen=True)
class TokenLayout:
    """Ids the model needs from a tokenizer: image placeholder, bos/eos/pad, the prompt
    separator and the loc tokens that carry every bin."""

    image: int
    bos: int
    eos: int
    pad: int
    sep: int
    loc: torch.Tensor  # (NUM_LOC_TOKENS,) vocabulary ids of <loc0000>..<loc1023>
    vocab_size: int

    @classmethod
    def from_tokenizer(cls, tok) -> TokenLayout:
        vocab = tok.get_vocab()

        def need(token: str, what: str) -> int:
            if token not in vocab:
                raise ValueError(f"tokenizer has no {what} token {token!r}; is this a PaliGemma tokenizer?")
            return int(vocab[token])

        missing = [loc_token(i) for i in range(NUM_LOC_TOKENS) if loc_token(i) not in vocab]
        if missing:
            raise ValueError(
                f"tokenizer lacks {len(missing)} of the {NUM_LOC_TOKENS} <locNNNN> tokens (first: {missing[0]}); "
                "action and steps-to-go bins map onto them"
            )
        return cls(
            image=need("<image>", "image"),
            bos=need(tok.bos_token or "<bos>", "bos"),
            eos=need(tok.eos_token or "<eos>", "eos"),
            pad=need(tok.pad_token or "<pad>", "pad"),
            sep=need("\n", "prompt separator"),
            loc=torch.tensor([vocab[loc_token(i)] for i in range(NUM_LOC_TOKENS)], dtype=torch.long),
            vocab_size=max(len(tok), max(vocab.values()) + 1),
        )

    def answer_mask(self) -> torch.Tensor:
        """Tokens a grounding answer may use: words, locs and eos."""
        mask = torch.ones(self.vocab_size, dtype=torch.bool)
        mask[[self.image, self.pad, self.bos, self.sep]] = False
        return mask

    def text_mask(self) -> torch.Tensor:
        """Tokens an instruction may be decoded into: words and eos, not locs, images or pad."""
        mask = torch.ones(self.vocab_size, dtype=torch.bool)
        mask[self.loc] = False
        mask[[self.image, self.pad, self.bos, self.sep]] = False
        return mask
