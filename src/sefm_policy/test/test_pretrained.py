"""The ``pretrained_path`` loader, on a small PaliGemma-architecture checkpoint written here
with ``save_pretrained`` whose vocabulary is laid out unlike the tiny one (text first,
loc tokens at the end, as in real PaliGemma)."""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GemmaConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.testing import table_observations
from sefm_policy.vocab import BASE_WORDS, loc_token


def write_paligemma(path, with_locs=True):
    words = list(dict.fromkeys(["<pad>", "<eos>", "<bos>", "<unk>", *BASE_WORDS, "\n", "<image>"]))
    locs = [loc_token(i) for i in range(1024)] if with_locs else []
    vocab = {t: i for i, t in enumerate(words + [f"filler{i}" for i in range(40)] + locs)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(["<pad>", "<eos>", "<bos>", "<unk>", "<image>", "\n"])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=GemmaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        ),
        image_token_index=vocab["<image>"],
        vocab_size=len(vocab),
        projection_dim=32,
        hidden_size=32,
    )
    torch.manual_seed(0)
    PaliGemmaForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return vocab


def test_pretrained_checkpoint_loads_with_bins_on_its_loc_tokens(tmp_path):
    vocab = write_paligemma(tmp_path / "pg")
    model = EFM.build(EFMConfig(pretrained_path=str(tmp_path / "pg"))).eval()
    assert model.layout.loc[0].item() == vocab["<loc0000>"] == len(vocab) - 1024
    assert model.layout.image == vocab["<image>"] and model.image_size == 32
    obs = table_observations(3, size=80)  # frames are resized to the checkpoint's 32 px
    sample = model.sample_actions(obs, generator=torch.Generator().manual_seed(0))
    assert sample.tokens.shape == (3, 4)
    with torch.no_grad():
        torch.testing.assert_close(model.action_log_prob(obs, sample.tokens), sample.log_prob, atol=1e-4, rtol=1e-4)
        assert model.steps_to_go_distribution(obs).shape == (3, 50)


def test_pretrained_model_round_trips_through_an_sefm_checkpoint(tmp_path):
    write_paligemma(tmp_path / "pg")
    model = EFM.build(EFMConfig(pretrained_path=str(tmp_path / "pg"))).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    obs = table_observations(2)
    assert np.array_equal(model.sample_actions(obs, greedy=True).tokens, loaded.sample_actions(obs, greedy=True).tokens)
    assert torch.equal(model.expected_steps_to_go(obs), loaded.expected_steps_to_go(obs))


def test_pretrained_path_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        EFM.build(EFMConfig(pretrained_path=str(tmp_path)))


def test_tokenizer_without_loc_tokens_is_a_clear_error(tmp_path):
    write_paligemma(tmp_path / "pg", with_locs=False)
    with pytest.raises(ValueError, match="lacks 1024 of the 1024 <locNNNN> tokens"):
        EFM.build(EFMConfig(pretrained_path=str(tmp_path / "pg")))
