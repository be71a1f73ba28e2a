import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from sefm_policy.config import EFMConfig
from sefm_policy.losses import answer_loss, bc_loss, images_rolled, instruction_loss, reinforce_loss, steps_to_go_loss
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation, Task
from sefm_policy.testing import aloha_observations, table_observations


def push_logits(model, bonus):
    """Add ``bonus`` (V,) to every logit the backbone produces."""
    return model.backbone.lm_head.register_forward_hook(lambda mod, inp, out: out + bonus)


def fit(model, batch_loss, done: str, lr: float):
    """Train on one fixed batch until metric ``done`` reaches 1.0 (at most 300 steps); its last output."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(300):
        out = batch_loss()
        if out.metrics[done] == 1.0:
            break
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return out


def test_constrained_decoding_never_emits_an_invalid_token(tiny):
    # Make every token the slots must not use overwhelmingly likely: loc tokens past each
    # slot's range, text tokens, the image token.
    bonus = torch.full((tiny.layout.vocab_size,), 50.0)
    bonus[tiny.loc_ids[:2]] = 0.0
    handle = push_logits(tiny, bonus)
    obs = table_observations(16)
    for seed in range(5):
        sample = tiny.sample_actions(obs, temperature=2.0, generator=torch.Generator().manual_seed(seed))
        sizes = np.array(tiny.embodiment.action.slot_sizes)
        assert np.all((sample.tokens >= 0) & (sample.tokens < sizes))
    handle.remove()


def test_sampled_log_prob_matches_teacher_forced_log_prob(tiny):
    obs = table_observations(6)
    sample = tiny.sample_actions(obs, temperature=1.0, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        forced = tiny.action_log_prob(obs, sample.tokens)
    torch.testing.assert_close(forced, sample.log_prob, atol=1e-4, rtol=1e-4)
    as_tensor = tiny.action_log_prob(obs, torch.as_tensor(sample.tokens))  # a trainer's targets on its device
    torch.testing.assert_close(as_tensor, forced)


def test_given_slots_are_taken_as_told_and_the_rest_follow_from_them(tiny):
    obs = table_observations(4)
    greedy = tiny.sample_actions(obs, greedy=True).tokens
    assert np.array_equal(tiny.sample_actions(obs, greedy=True, given=greedy[:, :2]).tokens, greedy)
    told = (greedy[:, :2] + 1) % np.array(tiny.embodiment.action.slot_sizes[:2])
    sample = tiny.sample_actions(obs, temperature=1.0, given=told, generator=torch.Generator().manual_seed(3))
    assert np.array_equal(sample.tokens[:, :2], told)
    with torch.no_grad():
        dist = tiny.action_distributions(obs, sample.tokens)
    chosen = dist.gather(-1, torch.as_tensor(sample.tokens)[..., None])[..., 0]
    torch.testing.assert_close(chosen[:, 2:].sum(-1), sample.log_prob, atol=1e-4, rtol=1e-4)  # the told slots' excluded
    mixed = told.copy()
    mixed[0, 0] = -1  # the policy chooses this one
    chose = tiny.sample_actions(obs, greedy=True, given=mixed).tokens
    assert chose[0, 0] == greedy[0, 0] and np.array_equal(chose[1:, :2], told[1:])
    with pytest.raises(ValueError, match="given must be"):
        tiny.sample_actions(obs, given=greedy[:2, :2])


def test_padded_batch_gives_the_same_answers_as_one_at_a_time(tiny):
    obs = table_observations(5)
    tokens = np.array([[0, 3, 1, 7]] * 5)
    with torch.no_grad():
        batch_d = tiny.expected_steps_to_go(obs)
        batch_lp = tiny.action_log_prob(obs, tokens)
        single_d = torch.cat([tiny.expected_steps_to_go([o]) for o in obs])
        single_lp = torch.cat([tiny.action_log_prob([o], tokens[:1]) for o in obs])
    torch.testing.assert_close(batch_d, single_d, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch_lp, single_lp, atol=1e-4, rtol=1e-4)
    greedy = tiny.sample_actions(obs, greedy=True).tokens
    assert np.array_equal(greedy, np.concatenate([tiny.sample_actions([o], greedy=True).tokens for o in obs]))


def test_sampling_is_reproducible_from_a_generator_and_greedy_is_deterministic(tiny):
    obs = table_observations(4)
    a = tiny.sample_actions(obs, generator=torch.Generator().manual_seed(7)).tokens
    b = tiny.sample_actions(obs, generator=torch.Generator().manual_seed(7)).tokens
    assert np.array_equal(a, b)
    assert np.array_equal(tiny.sample_actions(obs, temperature=0).tokens, tiny.sample_actions(obs, greedy=True).tokens)


def test_expected_steps_to_go_equals_hand_computed_expectation(tiny):
    # Force p(bin 0) = 1/4, p(bin 1) = 3/4 (all other steps bins ~0): d = 0.25*1 + 0.75*3 = 2.5.
    values = torch.full((50,), -40.0)
    values[:2] = torch.tensor([0.0, np.log(3.0)])

    def overwrite(mod, inp, out):
        out = out.clone()
        out[..., tiny.loc_ids[:50]] = values
        return out

    handle = tiny.backbone.lm_head.register_forward_hook(overwrite)
    with torch.no_grad():
        p = tiny.steps_to_go_distribution(table_observations(3))
        d = tiny.expected_steps_to_go(table_observations(3))
    handle.remove()
    torch.testing.assert_close(p[:, :2], torch.tensor([[0.25, 0.75]] * 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(d, torch.full((3,), 2.5), atol=1e-3, rtol=0)


def test_expected_steps_to_go_is_the_distribution_times_bin_centres(tiny):
    obs = table_observations(3)
    with torch.no_grad():
        p = tiny.steps_to_go_distribution(obs)
        d = tiny.expected_steps_to_go(obs)
    by_hand = [sum(p[i, k].item() * (2 * k + 1) for k in range(50)) for i in range(3)]
    assert p.shape == (3, 50)
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    assert d.tolist() == pytest.approx(by_hand, abs=1e-3)


def test_overfitting_eight_examples_reaches_full_bc_and_steps_accuracy(tiny):
    obs = table_observations(8, seed=3)
    rng = np.random.default_rng(3)
    actions = rng.uniform(-0.1, 0.1, (8, 2))
    tokens = tiny.embodiment.action.encode(actions)
    steps = rng.integers(0, 101, 8)
    opt = torch.optim.AdamW(tiny.parameters(), lr=2e-3)
    tiny.train()
    for _ in range(300):
        bc, st = bc_loss(tiny, obs, tokens), steps_to_go_loss(tiny, obs, steps)
        if bc.metrics["bc/exact"] == 1.0 and st.metrics["steps/acc"] == 1.0:
            break
        opt.zero_grad()
        (bc.loss + st.loss).backward()
        opt.step()
    assert bc.metrics["bc/exact"] == 1.0 and st.metrics["steps/acc"] == 1.0
    tiny.eval()
    greedy = tiny.sample_actions(obs, greedy=True)
    assert np.array_equal(greedy.tokens, tokens)
    assert np.abs(greedy.actions - actions).max() <= 0.005 + 1e-9


def test_rolled_images_cost_nothing_when_frames_agree_and_much_once_actions_depend_on_them(tiny):
    # One instruction for all: only the frames tell the eight random actions apart.
    obs = [replace(o, instruction="push the red moon to the blue cube") for o in table_observations(8, seed=4)]
    tokens = tiny.embodiment.action.encode(np.random.default_rng(4).uniform(-0.1, 0.1, (8, 2)))
    same = [replace(o, images=obs[0].images) for o in obs]
    with torch.no_grad():
        assert bc_loss(tiny, images_rolled(same), tokens).loss.item() == bc_loss(tiny, same, tokens).loss.item()
    fit(tiny, lambda: bc_loss(tiny, obs, tokens), "bc/exact", lr=2e-3)
    with torch.no_grad():
        gain = bc_loss(tiny, images_rolled(obs), tokens).loss - bc_loss(tiny, obs, tokens).loss
    assert gain.item() > 1.0


def test_background_normalisation_zeroes_the_fitted_scene_and_keeps_what_moves(tiny):
    board = table_observations(1, seed=5)[0]
    tiny.fit_background([board] * 3)
    frame = board.images[0].copy()
    frame[10:14, 20:24] = (220, 40, 40)  # a block appears in the current frame
    moved = replace(board, images=(frame, board.images[1]))
    pixels = tiny.prefix(Task.ACT, [board, moved]).pixel_values  # (observations × 2 images, 3, S, S)
    assert [pixels[i].abs().max().item() for i in (0, 1, 3)] == [0.0, 0.0, 0.0]
    changed = pixels[2].abs().sum(0) > 0
    assert changed[10:14, 20:24].all() and changed.sum().item() == 16


def test_siglip_normalisation_maps_pixels_to_minus_one_to_one():
    model = EFM.build(EFMConfig(pixel_norm="siglip"))
    white, black = np.full((64, 64, 3), 255, np.uint8), np.zeros((64, 64, 3), np.uint8)
    pixels = model.prefix(Task.ACT, [Observation(images=(white, black), instruction="push")]).pixel_values
    assert pixels[0].eq(1.0).all() and pixels[1].eq(-1.0).all()


def test_instruction_loss_is_finite_when_instructions_differ_in_length(tiny):
    obs = table_observations(2)
    out = instruction_loss(tiny, obs, ["push the red moon to the blue cube", "slide the green star left"])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in tiny.parameters() if p.grad is not None)


def test_instruction_prediction_learns_to_name_the_task(tiny):
    obs = table_observations(4, seed=5)
    texts = [o.instruction for o in obs]
    fit(tiny, lambda: instruction_loss(tiny, obs, texts), "instr/exact", lr=3e-3)
    tiny.eval()
    assert tiny.predict_instruction(obs) == [t.lower() for t in texts]


def test_grounding_answers_mix_words_and_loc_tokens_and_are_learned(tiny):
    obs = table_observations(4, seed=7)
    prompts = ["point to the red star", "name <loc0003><loc0040>", "is the red moon left of the blue cube ?", "x"]
    answers = ["<loc0012><loc0033>", "green cube", "yes", "<loc0063><loc0000> blue"]
    assert list(tiny.encode_text("name <loc0003><loc0040>")[-2:]) == tiny.layout.loc[[3, 40]].tolist()
    fit(tiny, lambda: answer_loss(tiny, obs, prompts, answers), "answer/exact", lr=3e-3)
    tiny.eval()
    assert tiny.answer(obs, prompts) == ["<loc0012> <loc0033>", "green cube", "yes", "<loc0063> <loc0000> blue"]


def test_soft_loc_targets_reward_a_near_miss_over_a_far_one(tiny):
    obs = table_observations(2, seed=3)
    prompts, answers = ["point to the red star"] * 2, ["<loc0030><loc0030>"] * 2
    losses = {}
    for guess in (31, 50):
        bonus = torch.zeros(tiny.layout.vocab_size)
        bonus[tiny.layout.loc[guess]] = 8.0
        handle = push_logits(tiny, bonus)
        with torch.no_grad():
            losses[guess] = (
                answer_loss(tiny, obs, prompts, answers, loc_sigma=2.0).loss.item(),
                answer_loss(tiny, obs, prompts, answers).loss.item(),
            )
        handle.remove()
    soft_gain, hard_gain = losses[50][0] - losses[31][0], abs(losses[50][1] - losses[31][1])
    assert soft_gain > 0.5 and soft_gain > 4 * hard_gain  # hard targets: both guesses are simply wrong


def test_one_reinforce_update_raises_a_positive_return_action_and_lowers_a_negative_one(tiny):
    obs = table_observations(2)
    tokens = np.array([[0, 5, 1, 2], [1, 8, 0, 9]])
    with torch.no_grad():
        before = tiny.action_log_prob(obs, tokens)
    opt = torch.optim.SGD(tiny.parameters(), lr=0.5)
    loss = reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0])
    opt.zero_grad()
    loss.loss.backward()
    opt.step()
    with torch.no_grad():
        after = tiny.action_log_prob(obs, tokens)
    assert after[0] > before[0] and after[1] < before[1]


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_the_clipped_surrogate_is_reinforce_at_the_practising_policy_and_stops_a_step_pushed_past_the_clip(tiny):
    obs = table_observations(2)
    tokens = np.array([[0, 5, 1, 2], [1, 8, 0, 9]])
    with torch.no_grad():
        practised = tiny.action_log_prob(obs, tokens)
    plain = _grads(tiny, reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0]).loss)
    at_start = reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0], sampled_log_prob=practised, clip=0.2)
    assert at_start.metrics["rl/approx_kl"] == pytest.approx(0.0, abs=1e-6) and at_start.metrics["rl/clip_frac"] == 0
    assert torch.allclose(_grads(tiny, at_start.loss), plain, atol=1e-7)
    # Both steps now 2.7x likelier than when practised: the positive return has pushed enough and
    # stops; the negative one still pulls its step down, as far as plain REINFORCE would.
    moved = reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0], sampled_log_prob=practised - 1.0, clip=0.2)
    assert moved.metrics["rl/clip_frac"] == 1.0 and moved.metrics["rl/approx_kl"] > 0.5
    only_negative = _grads(tiny, reinforce_loss(tiny, obs[1:], tokens[1:], returns=[-1.0]).loss)
    assert torch.allclose(_grads(tiny, moved.loss), np.e * only_negative / 2, atol=1e-6)
    with pytest.raises(ValueError, match="sampled_log_prob"):
        reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0], clip=0.2)


def test_the_kl_term_is_zero_at_the_reference_and_pulls_a_drifted_policy_back(tiny):
    obs = table_observations(2)
    tokens = np.array([[0, 5, 1, 2], [1, 8, 0, 9]])
    reference = copy.deepcopy(tiny).requires_grad_(False)
    plain = reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0])
    anchored = reinforce_loss(tiny, obs, tokens, returns=[1.0, -1.0], reference=reference, kl_coef=1.0)
    assert anchored.metrics["rl/kl"] == pytest.approx(0.0, abs=1e-6)
    assert anchored.loss.item() == pytest.approx(plain.loss.item(), abs=1e-6)
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.05 * torch.randn_like(p))
    opt = torch.optim.SGD(tiny.parameters(), lr=0.02)
    kl = [reinforce_loss(tiny, obs, tokens, returns=[0.0, 0.0], reference=reference, kl_coef=1.0)]
    opt.zero_grad()
    kl[0].loss.backward()
    opt.step()
    kl.append(reinforce_loss(tiny, obs, tokens, returns=[0.0, 0.0], reference=reference, kl_coef=1.0))
    assert kl[0].metrics["rl/kl"] > 1e-3 and kl[1].metrics["rl/kl"] < kl[0].metrics["rl/kl"]


def test_freezing_the_vision_tower_keeps_it_fixed_while_the_rest_trains(tiny):
    tiny.freeze_vision_tower()
    vision = {k: v.clone() for k, v in tiny.backbone.model.vision_tower.state_dict().items()}
    lm_before = tiny.backbone.model.language_model.layers[0].mlp.up_proj.weight.clone()
    opt = torch.optim.AdamW([p for p in tiny.parameters() if p.requires_grad], lr=1e-2)
    obs = table_observations(4)
    loss = bc_loss(tiny, obs, np.zeros((4, 4), dtype=int)).loss
    loss.backward()
    opt.step()
    assert all(torch.equal(v, tiny.backbone.model.vision_tower.state_dict()[k]) for k, v in vision.items())
    assert not torch.equal(lm_before, tiny.backbone.model.language_model.layers[0].mlp.up_proj.weight)


def test_aloha_acts_in_chunks_of_seventy_tokens_with_joint_state_in_the_prompt(tiny_aloha):
    obs = aloha_observations(3)
    sample = tiny_aloha.sample_actions(obs, generator=torch.Generator().manual_seed(0))
    assert sample.tokens.shape == (3, 70) and sample.actions.shape == (3, 5, 14)
    prefix = tiny_aloha.prefix(Task.ACT, obs[:1])
    n_image_tokens = int((prefix.input_ids == tiny_aloha.layout.image).sum())
    assert n_image_tokens == 2 * tiny_aloha.tokens_per_image  # four cameras packed into two images
    state_ids = tiny_aloha.loc_ids[torch.from_numpy(tiny_aloha.embodiment.state.encode(obs[0].state))]
    assert prefix.input_ids[0, -15:-1].tolist() == state_ids.tolist()
    with torch.no_grad():
        forced = tiny_aloha.action_log_prob(obs, sample.tokens)
    torch.testing.assert_close(forced, sample.log_prob, atol=1e-3, rtol=1e-4)


def test_aloha_without_joint_state_is_a_clear_error(tiny_aloha):
    obs = aloha_observations(1)[0]
    with pytest.raises(ValueError, match="joint state"):
        tiny_aloha.sample_actions([Observation(images=obs.images, instruction=obs.instruction)])


def test_wrong_camera_count_or_image_type_is_a_clear_error(tiny):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="carry 2 images"):
        tiny.sample_actions([Observation(images=(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),))])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        tiny.sample_actions([Observation(images=(np.zeros((64, 64, 3)), np.zeros((64, 64, 3))))])


def test_the_action_weight_shifts_the_bc_loss_from_a_chains_places_to_its_action():
    model = EFM.build(EFMConfig(reason=True))
    obs = table_observations(3)
    tokens = model.sample_actions(obs, temperature=1.0, generator=torch.Generator().manual_seed(0)).tokens
    with torch.no_grad():
        dist = model.action_distributions(obs, torch.as_tensor(tokens))
        nll = -dist.gather(-1, torch.as_tensor(tokens)[..., None])[..., 0]
        places, action = model.embodiment.reasoning_slots, nll.shape[-1] - model.embodiment.reasoning_slots
        assert places == 12 and action == 4
        plain, heavy = bc_loss(model, obs, tokens), bc_loss(model, obs, tokens, action_weight=3.0)
    torch.testing.assert_close(plain.loss, nll.mean())
    expected = (nll[:, :places].sum(-1) + 3.0 * nll[:, places:].sum(-1)).mean() / (places + 3.0 * action)
    torch.testing.assert_close(heavy.loss, expected)
    assert heavy.metrics["bc/loss"] == plain.metrics["bc/loss"]  # the reported loss stays the plain mean


def test_a_reconfigured_model_is_validated_like_a_new_one():
    model = EFM.build(EFMConfig(reason=True)).reconfigured(place_radices=[6, 4])
    assert model.embodiment.reasoning_slots == 12 and model.embodiment.action.slot_sizes[:4] == (6, 6, 4, 4)
    with pytest.raises(ValueError, match="place_radices"):
        model.reconfigured(place_radices=[8, 1])


def test_an_action_from_places_follows_the_said_places_and_not_the_images():
    model = EFM.build(EFMConfig(reason=True, action_from="places"))
    obs = table_observations(4)
    sample = model.sample_actions(obs, temperature=1.0, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model.action_log_prob(obs, sample.tokens), sample.log_prob, atol=1e-4, rtol=1e-4)
        true = model.action_distributions(obs, sample.tokens)
        rolled = model.action_distributions(images_rolled(obs), sample.tokens)
    chain = model.embodiment.reasoning_slots
    torch.testing.assert_close(true[:, chain:], rolled[:, chain:])  # the action never sees the images
    assert not torch.allclose(true[:, :chain], rolled[:, :chain])  # the places do
    torch.testing.assert_close(model.action_from_places_distributions(obs, sample.tokens), true[:, chain:])
    told = model.sample_actions(images_rolled(obs), greedy=True, given=sample.tokens[:, :chain]).tokens
    assert np.array_equal(told, model.sample_actions(obs, greedy=True, given=sample.tokens[:, :chain]).tokens)
    with pytest.raises(ValueError, match="action_from"):
        EFMConfig(action_from="places")


def test_per_slot_tokens_give_every_slot_its_own_loc_tokens_and_decode_consistently():
    model = EFM.build(EFMConfig(reason=True, place_radices=[6, 4], slot_tokens="per_slot"))
    sizes = model.embodiment.action.slot_sizes
    valid = torch.cat([model.action_ids[k, :size] for k, size in enumerate(sizes)])
    assert len(valid) == sum(sizes) == len(set(valid.tolist()))  # no token fills two slots
    assert set(valid.tolist()) <= set(model.loc_ids.tolist())
    obs = table_observations(3)
    sample = model.sample_actions(obs, temperature=1.0, generator=torch.Generator().manual_seed(4))
    assert np.all((sample.tokens >= 0) & (sample.tokens < np.array(sizes)))
    with torch.no_grad():
        torch.testing.assert_close(model.action_log_prob(obs, sample.tokens), sample.log_prob, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="slot_tokens"):
        EFM.build(EFMConfig(embodiment="aloha", slot_tokens="per_slot"))


def test_practice_says_a_chains_places_greedily_and_samples_and_weighs_only_the_action():
    model = EFM.build(EFMConfig(reason=True, action_from="places"))
    obs = table_observations(6)
    chain = model.embodiment.reasoning_slots
    greedy = model.sample_actions(obs, greedy=True).tokens
    samples = [model.sample_actions(obs, temperature=2.0, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    for sample in samples:
        assert np.array_equal(sample.tokens[:, :chain], greedy[:, :chain])
    assert not np.array_equal(samples[0].tokens[:, chain:], samples[1].tokens[:, chain:])
    with torch.no_grad():
        dist = model.action_distributions(obs, samples[0].tokens)
        per_slot = dist.gather(-1, torch.as_tensor(samples[0].tokens)[..., None])[..., 0]
        torch.testing.assert_close(model.action_log_prob(obs, samples[0].tokens), per_slot[:, chain:].sum(-1))
        torch.testing.assert_close(samples[0].log_prob, per_slot[:, chain:].sum(-1), atol=1e-4, rtol=1e-4)


def test_a_chain_temperature_samples_the_places_coarse_digits_and_weighs_them_with_the_action():
    model = EFM.build(EFMConfig(reason=True, action_from="places"))
    obs = table_observations(6)
    chain = model.embodiment.reasoning_slots
    coarse = list(model.embodiment.action.coarse_place_slots)
    fine = [k for k in range(chain) if k not in coarse]
    assert len(coarse) == 6 and len(fine) == 6  # three places, (row, column) digit pairs at two levels
    samples = [
        model.sample_actions(obs, temperature=2.0, chain_temperature=2.0, generator=torch.Generator().manual_seed(s))
        for s in (1, 2)
    ]
    assert not np.array_equal(samples[0].tokens[:, coarse], samples[1].tokens[:, coarse])
    for sample in samples:  # the finer digits follow greedily from the coarse ones said
        told = np.where(np.isin(np.arange(chain), coarse), sample.tokens[:, :chain], -1)
        greedy = model.sample_actions(obs, greedy=True, given=told).tokens
        assert np.array_equal(greedy[:, fine], sample.tokens[:, fine])
    with torch.no_grad():
        with_chain = model.action_log_prob(obs, samples[0].tokens, chain=True)
        torch.testing.assert_close(samples[0].log_prob, with_chain, atol=1e-4, rtol=1e-4)
        assert (with_chain < model.action_log_prob(obs, samples[0].tokens)).all()
    with pytest.raises(ValueError, match="chain_temperature"):
        model.sample_actions(obs, chain_temperature=-1.0)


def test_half_patch_reads_tell_the_action_a_median_of_five_shifted_reads_unless_practice_samples_the_places():
    single = EFM.build(EFMConfig(reason=True, action_from="places"))
    model = single.reconfigured(place_reads="half_patch")
    obs = table_observations(5)
    chain = model.embodiment.reasoning_slots
    places = model.half_patch_places(obs)
    assert places.shape == (5, chain)
    assert (places >= 0).all() and (places < model.action_slot_sizes[:chain].numpy()).all()
    read = model.sample_actions(obs, greedy=True)
    assert np.array_equal(read.tokens[:, :chain], places)
    assert np.array_equal(read.tokens, single.sample_actions(obs, greedy=True, given=places).tokens)
    some = np.full((5, 3), -1)
    some[:, 0] = (places[:, 0] + 1) % model.action_slot_sizes[0].item()
    told = model.sample_actions(obs, greedy=True, given=some).tokens
    assert np.array_equal(told[:, 0], some[:, 0]) and np.array_equal(told[:, 1:chain], places[:, 1:])
    acting = model.sample_actions(obs, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(acting.tokens[:, :chain], places)  # practice samples the action from the same places
    exploring = model.sample_actions(obs, chain_temperature=1.0, generator=torch.Generator().manual_seed(0))
    reference = single.sample_actions(obs, chain_temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(exploring.tokens, reference.tokens)  # sampled places come from the single read
    with pytest.raises(ValueError, match="chain of places"):
        EFM.build(EFMConfig()).half_patch_places(obs)
    with pytest.raises(ValueError, match="place_reads"):
        EFMConfig(reason=True, place_reads="half_patch")


def test_practising_the_fine_digits_keeps_the_five_reads_patches_and_weighs_the_fine_digits_with_the_action():
    model = EFM.build(EFMConfig(reason=True, action_from="places", place_reads="half_patch", practice_digits="fine"))
    obs = table_observations(6)
    chain = model.embodiment.reasoning_slots
    coarse = list(model.embodiment.action.coarse_place_slots)
    fine = [k for k in range(chain) if k not in coarse]
    read = model.half_patch_places(obs)
    samples = [
        model.sample_actions(obs, temperature=2.0, chain_temperature=3.0, generator=torch.Generator().manual_seed(s))
        for s in (1, 2)
    ]
    for sample in samples:
        assert np.array_equal(sample.tokens[:, coarse], read[:, coarse])  # the patches the five reads say
    assert not np.array_equal(samples[0].tokens[:, fine], samples[1].tokens[:, fine])
    with torch.no_grad():
        dist = model.action_distributions(obs, samples[0].tokens)
        per_slot = dist.gather(-1, torch.as_tensor(samples[0].tokens)[..., None])[..., 0]
        weighed = model.action_log_prob(obs, samples[0].tokens, chain=True)
        torch.testing.assert_close(weighed, per_slot[:, fine].sum(-1) + per_slot[:, chain:].sum(-1))
        torch.testing.assert_close(samples[0].log_prob, weighed, atol=1e-4, rtol=1e-4)
    assert np.array_equal(model.sample_actions(obs, greedy=True).tokens[:, :chain], read)  # acting is unchanged
    with pytest.raises(ValueError, match="practice_digits"):
        EFMConfig(practice_digits="fine")


def test_a_place_pointer_says_each_coarse_digit_of_the_image_token_it_scores_highest(tmp_path):
    from sefm_policy.checkpoint import load_checkpoint, save_checkpoint

    model = EFM.build(EFMConfig(reason=True, action_from="places", place_radices=[6, 4], place_pointer=True))
    pointer, grid = model.pointer, model.pointer.grid
    assert grid == 6
    obs = table_observations(4)
    chain = model.embodiment.reasoning_slots
    coarse = list(model.embodiment.action.coarse_place_slots)
    # Every query the same, every key zero but the current frame's token at row 4, column 1.
    with torch.no_grad():
        pointer.query.weight.zero_()
        pointer.query.bias.fill_(1.0)
    target = 4 * grid + 1
    handle = pointer.key.register_forward_hook(
        lambda mod, inp, out: torch.zeros_like(out).index_fill(1, torch.tensor([target]), 30.0)
    )
    said = model.sample_actions(obs, greedy=True).tokens
    assert (said[:, coarse[0::2]] == 4).all() and (said[:, coarse[1::2]] == 1).all()
    sample = model.sample_actions(obs, chain_temperature=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        forced = model.action_log_prob(obs, sample.tokens, chain=True)
    torch.testing.assert_close(forced, sample.log_prob, atol=1e-4, rtol=1e-4)
    handle.remove()
    places = model.chain_distributions(obs, said)
    (-places.gather(-1, torch.as_tensor(said[:, :chain])[..., None]).sum()).backward()
    assert pointer.key.weight.grad.abs().sum() > 0 and pointer.query.weight.grad.abs().sum() > 0
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.pointer.key.weight, pointer.key.weight)
    assert np.array_equal(loaded.sample_actions(obs, greedy=True).tokens, model.sample_actions(obs, greedy=True).tokens)
    assert model.reconfigured(place_pointer=False).pointer is None
    with pytest.raises(ValueError, match="place_pointer"):
        EFMConfig(reason=True, action_from="places", place_radices=[8, 8], place_pointer=True)
    with pytest.raises(ValueError, match="place_pointer"):
        EFMConfig(reason=True, place_radices=[6, 4], place_pointer=True)


def test_a_pointer_told_its_words_order_starts_as_it_was_and_then_tells_a_block_word_from_a_target_word(tmp_path):
    from sefm_policy.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    config = EFMConfig(reason=True, action_from="places", place_radices=[6, 4], place_pointer=True)
    model, obs = EFM.build(config), table_observations(2)
    said = model.sample_actions(obs, greedy=True).tokens
    with torch.no_grad():
        before = model.chain_distributions(obs, said)
        ordered = model.reconfigured(pointer_word_order=True)
        torch.testing.assert_close(ordered.chain_distributions(obs, said), before)  # its order starts at zero
    pointer = ordered.pointer
    states, keys = torch.randn(1, pointer.query.in_features), torch.randn(1, pointer.grid**2, 64)
    words = torch.randn(1, 5, pointer.query.in_features)
    swapped = words[:, [0, 3, 2, 1, 4]]  # the same words, two of them trading places
    present = torch.ones(1, 5, dtype=torch.bool)
    with torch.no_grad():
        bag = [pointer.logits(states, keys, (w, present)) for w in (words, swapped)]
        pointer.word_gates.value.weight.normal_()
        order = [pointer.logits(states, keys, (w, present)) for w in (words, swapped)]
    torch.testing.assert_close(bag[0], bag[1])  # a read without order cannot tell them apart
    assert not torch.allclose(order[0], order[1], atol=1e-3)
    save_checkpoint(ordered, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.pointer.word_gates.value.weight, pointer.word_gates.value.weight)
    assert not ordered.reconfigured(pointer_word_order=False).pointer.ordered
    with pytest.raises(ValueError, match="pointer_word_order"):
        EFMConfig(reason=True, action_from="places", place_radices=[6, 4], pointer_word_order=True)


def test_steps_to_go_from_places_reads_the_places_greedy_act_says_and_not_the_images():
    model = EFM.build(EFMConfig(reason=True, action_from="places", place_radices=[6, 4], steps_from="places"))
    obs, chain = table_observations(3), model.embodiment.reasoning_slots
    said = model.said_places(obs)
    assert np.array_equal(said, model.sample_actions(obs, greedy=True).tokens[:, :chain])
    with torch.no_grad():
        own = model.steps_to_go_log_probs(obs)
        torch.testing.assert_close(own, model.steps_to_go_log_probs(obs, said))
        # Told the places, d reads no pixel; told others, it changes.
        torch.testing.assert_close(model.steps_to_go_log_probs(images_rolled(obs), said), own)
        moved = (said + 1) % model.action_slot_sizes[:chain].numpy()
        assert not torch.allclose(model.steps_to_go_log_probs(obs, moved), own)
    tokens = model.sample_actions(obs, greedy=True).tokens
    out = steps_to_go_loss(model, obs, [3.0, 10.0, 40.0], tokens)
    out.loss.backward()
    assert np.isfinite(out.metrics["steps/abs_err"])
    assert model.backbone.lm_head.weight.grad.abs().sum() > 0
    five = model.reconfigured(place_reads="half_patch")
    assert np.array_equal(five.said_places(obs), five.half_patch_places(obs))
    with pytest.raises(ValueError, match="steps_from"):
        EFMConfig(reason=True, steps_from="places")
