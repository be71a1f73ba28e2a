"""Stage 0: grounding questions answered from the scene's ground truth, and a resumable loop."""

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from sefm_interfaces.typed_config import ConfigError, parse_config
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_sim_bridge.grounding_scenes import PALETTE
from sefm_sim_bridge.scene import BLOCK_HALF
from sefm_trainer.grounding import PLACE, TASKS, GroundingData, parse_point, point_text, points_at
from sefm_trainer.pretrain import PretrainConfig, place_probe, place_questions, pretrain
from sefm_trainer.scene_chain import SCENE_KINDS, SceneChains

TINY = {"image_size": 32, "vision": {"hidden_size": 32, "intermediate_size": 64}, "text": {"hidden_size": 64}}
# The same, reasoning in places read by a pointer at its 4 x 4 patch grid.
POINTING = {**TINY, "image_size": 64, "reason": True, "action_from": "places", "place_radices": [4, 4]}
POINTING["place_pointer"] = True


@pytest.fixture(scope="module")
def data():
    d = GroundingData(96)
    yield d
    d.close()


def test_point_answers_name_the_object_within_a_bin(data):
    for q in data.probe("blocks8", "point", 10):
        assert q.prompt.startswith("point to the ") and points_at(parse_point(q.answer), q.truth)
        assert np.all(np.abs(parse_point(q.answer) - q.truth) <= 0.72 / PLACE.cells)


def test_a_place_is_written_coarse_cell_first_and_read_back():
    corner = point_text(np.array([-0.355, 0.258]))  # near the image's top-left corner: every digit 0
    assert corner == "<loc0000>" * 4
    far = point_text(np.array([0.355, -0.258]))
    assert far == f"<loc{PLACE.radices[0] - 1:04d}>" * 4
    assert parse_point(far + "<loc0003>") is not None  # tokens past the place are ignored
    assert parse_point("<loc0001><loc0002><loc0003>") is None  # too few
    assert parse_point("<loc0001><loc0002><loc0003><loc0064>") is None  # not a digit of the grid


def test_name_and_nearest_answers_come_from_the_scene(data):
    scene, _ = data.scene("blocks8", 3)
    rng = np.random.default_rng(0)
    from sefm_trainer.grounding import QUESTION_MAKERS

    names = list(scene.objects)
    q = QUESTION_MAKERS["name"](scene, names, rng, None)
    xy = parse_point(q.prompt.removeprefix("name "))
    assert min(names, key=lambda n: np.linalg.norm(scene.objects[n] - xy)) == q.answer
    q = QUESTION_MAKERS["nearest"](scene, names, rng, None)
    asked = q.prompt.removeprefix("nearest to the ")
    others = sorted((np.linalg.norm(scene.objects[n] - scene.objects[asked]), n) for n in names if n != asked)
    assert q.answer == others[0][1]


def test_relations_follow_the_board_axes(data):
    from sefm_trainer.grounding import RELATIONS

    asked = 0
    for i, q in enumerate(data.probe("blocks4", "relation", 8)):
        if q.task != "relation":
            continue
        scene, _ = data.scene("blocks4", 2 * i + 1)  # the probe's i-th scene
        words = q.prompt.removeprefix("is the ").removesuffix(" ?")
        relation = next(r for r in RELATIONS if f" {r} the " in words)
        a, b = words.split(f" {relation} the ")
        axis, sign = RELATIONS[relation]
        delta = (scene.objects[a] - scene.objects[b])[axis]
        assert q.answer == ("yes" if delta * sign > 0 else "no")
        asked += 1
    assert asked > 0


def test_instruction_questions_show_the_object_moved_to_its_goal(data):
    for q in data.probe("blocks8", "instruction", 4):
        first, last = q.observation.images
        assert q.answer.startswith("push the ") and not np.array_equal(first, last)
    again = data.probe("blocks8", "instruction", 4)
    assert [q.answer for q in again] == [q.answer for q in data.probe("blocks8", "instruction", 4)]


def test_scenes_vary_in_kind_colour_and_count_and_batches_repeat_from_their_seed(data):
    batch = data.batch(0, 5, 160)
    assert {q.task for q in batch} == set(TASKS)
    names = {n for q in batch for n in q.prompt.split("the ")[1:]}
    assert any("banana" in n for n in names)
    again = data.batch(0, 5, 160)
    assert [(q.prompt, q.answer) for q in again] == [(q.prompt, q.answer) for q in batch]
    pairs = zip(again, batch, strict=True)
    assert all(np.array_equal(a.observation.images[0], b.observation.images[0]) for a, b in pairs)


def test_shapes_boards_show_blocks_of_one_colour_that_only_their_shape_tells_apart(data):
    for seed in range(1, 12, 2):
        scene, env, shown = data.scenes.sample("shapes", seed)
        colours, shapes = zip(*(name.split() for name in scene.objects), strict=True)
        assert 2 <= len(scene.objects) <= 4 and len(set(colours)) == 1 and len(set(shapes)) == len(shapes)
        for body in shown:
            assert body.split()[1] == shown[body].split()[1]  # a block keeps its shape, takes the colour
            rgba = env.model.geom_rgba[data.scenes._geoms[body]]
            assert np.allclose(rgba[:, :3], PALETTE[colours[0]])


def test_task_weights_choose_the_questions_and_an_unknown_task_is_refused_by_key():
    only_points = GroundingData(64, task_weights={"point": 1.0})
    assert {q.task for q in only_points.batch(seed=0, step=0, size=12)} == {"point"}
    with pytest.raises(ConfigError, match="task_weights"):
        parse_config({"out": "x", "task_weights": {"pointing": 1.0}}, PretrainConfig)


def test_a_point_counts_within_one_block_width():
    truth = np.array([0.1, 0.0])
    assert points_at(truth + np.array([1.8 * BLOCK_HALF, 0]), truth)
    assert not points_at(truth + np.array([0, 2.1 * BLOCK_HALF]), truth)
    assert not points_at(None, truth)


@pytest.mark.parametrize(
    "asked", [{"model": TINY}, {"model": POINTING, "place_batch": 2, "objects": True}], ids=["loc", "places"]
)
def test_stage0_resumed_after_a_crash_ends_where_an_uninterrupted_run_does(tmp_path, monkeypatch, asked):
    cfg = {"steps": 4, "batch_size": 4, "probe_every": 4, "probe_scenes": 2, "checkpoint_every": 2, **asked}
    straight = pretrain(PretrainConfig(out=str(tmp_path / "a"), **cfg))
    batch = GroundingData.batch

    def crash_at_step_three(self, seed, step, *args):
        if step == 2:  # the step-2 checkpoint is written; the process dies before step 3
            raise KeyboardInterrupt
        return batch(self, seed, step, *args)

    monkeypatch.setattr(GroundingData, "batch", crash_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        pretrain(PretrainConfig(out=str(tmp_path / "b"), **cfg))
    monkeypatch.setattr(GroundingData, "batch", batch)
    assert pretrain(PretrainConfig(out=str(tmp_path / "b"), **cfg)) == straight
    a = safetensors.torch.load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    probes = [json.loads(line) for line in (tmp_path / "a" / "probe.jsonl").read_text().splitlines()]
    assert [p["step"] for p in probes] == [4] and "blocks8/point" in probes[0]
    assert (tmp_path / "a" / "best" / "manifest.json").is_file()


def test_stage0_stopped_mid_schedule_goes_on_to_where_a_straight_run_ends(tmp_path):
    cfg = {"steps": 4, "batch_size": 4, "probe_every": 4, "probe_scenes": 2, "checkpoint_every": 4, "model": TINY}
    straight = pretrain(PretrainConfig(out=str(tmp_path / "a"), **cfg))
    pretrain(PretrainConfig(out=str(tmp_path / "b"), stop_at=2, **cfg))
    assert json.loads((tmp_path / "b" / "last" / "manifest.json").read_text())["metadata"]["step"] == 2
    assert pretrain(PretrainConfig(out=str(tmp_path / "b"), **cfg)) == straight
    a = safetensors.torch.load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(ConfigError, match="stop_at"):
        parse_config({"out": "x", "steps": 4, "stop_at": 5}, PretrainConfig, "pretrain.yaml")


def test_a_base_continues_from_its_weights_and_a_checkpoint_of_another_model_is_refused_by_key(tmp_path):
    cfg = {"steps": 2, "batch_size": 2, "probe_every": 2, "probe_scenes": 1, "checkpoint_every": 2}
    pretrain(PretrainConfig(out=str(tmp_path / "base"), model=TINY, **cfg))
    base = tmp_path / "base" / "last"
    pretrain(PretrainConfig(out=str(tmp_path / "more"), init=str(base), model=TINY, seed=1, **cfg | {"steps": 1}))
    before = safetensors.torch.load_file(str(base / "model.safetensors"))
    after = safetensors.torch.load_file(str(tmp_path / "more" / "last" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained on from there
    kept, now = (safetensors.torch.load_file(str(d / "background.safetensors")) for d in (base, tmp_path / "more/last"))
    assert all(torch.equal(kept[k], now[k]) for k in kept)  # the base's background, not one fitted anew
    with pytest.raises(ConfigError, match="init"):
        pretrain(PretrainConfig(out=str(tmp_path / "other"), init=str(base), model=TINY | {"image_size": 64}, **cfg))


def test_a_pointing_base_continues_with_its_pointer_told_the_words_order(tmp_path):
    cfg = {"steps": 1, "batch_size": 2, "place_batch": 2, "probe_every": 1, "probe_scenes": 1, "checkpoint_every": 1}
    pretrain(PretrainConfig(out=str(tmp_path / "base"), model=POINTING, **cfg))
    ordered = POINTING | {"pointer_word_order": True}
    pretrain(PretrainConfig(out=str(tmp_path / "more"), init=str(tmp_path / "base/last"), model=ordered, **cfg))
    weights = safetensors.torch.load_file(str(tmp_path / "more" / "last" / "model.safetensors"))
    assert any("word_gates" in name for name in weights)
    with pytest.raises(ConfigError, match="pointer_word_order"):
        pretrain(PretrainConfig(out=str(tmp_path / "back"), init=str(tmp_path / "more/last"), model=POINTING, **cfg))


def test_chain_questions_come_from_the_board_kinds_asked_and_repeat_from_their_step():
    cfg = PretrainConfig(out="x", place_batch=6, place_kinds={"banana": 1.0}, model=POINTING)
    tokenizer = EFM.build(cfg.model).embodiment.action
    chains = SceneChains(64)
    try:
        observations, digits, _ = place_questions(chains, tokenizer, cfg, step=3)
        again, same, _ = place_questions(chains, tokenizer, cfg, step=3)
        other, _, _ = place_questions(chains, tokenizer, cfg, step=4)
    finally:
        chains.close()
    assert len(observations) == len(digits) == 6
    assert all("banana" in o.instruction for o in observations)  # one object: it is the one named
    assert np.array_equal(digits, same) and all(
        np.array_equal(a.images[0], b.images[0]) for a, b in zip(observations, again, strict=True)
    )
    assert not np.array_equal(observations[0].images[0], other[0].images[0])


def test_a_reasoning_base_is_asked_places_probed_on_them_and_kept_by_its_8_block_pointing(tmp_path):
    cfg = {"steps": 2, "batch_size": 2, "probe_every": 2, "probe_scenes": 2, "checkpoint_every": 2}
    best = pretrain(PretrainConfig(out=str(tmp_path), place_batch=4, objects=True, model=POINTING, **cfg))
    probe = json.loads((tmp_path / "probe.jsonl").read_text().splitlines()[-1])
    for kind in SCENE_KINDS:
        assert all(0.0 <= probe[f"{kind}/places{part}"] <= 1.0 for part in ("", "_target", "_effector"))
    assert best == {"score": probe["blocks8/places"], "step": 2}
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["places/loss"] > 0 and logged["answer/loss"] > 0 and logged["objects/loss"] > 0
    weights = safetensors.torch.load_file(str(tmp_path / "best" / "model.safetensors"))
    assert any("place_pointer" in name for name in weights)


def test_chain_questions_need_a_model_that_reasons_in_places_and_name_the_key():
    with pytest.raises(ConfigError, match="place_batch"):
        parse_config({"out": "x", "place_batch": 8, "model": TINY}, PretrainConfig)
    with pytest.raises(ConfigError, match="objects"):
        parse_config({"out": "x", "objects": True, "model": POINTING}, PretrainConfig)
    with pytest.raises(ConfigError, match="place_kinds"):
        parse_config({"out": "x", "place_kinds": {"blocks9": 1.0}}, PretrainConfig)


class SaysPlaces:
    """A stand-in model that says given places for the probe's questions, in the order asked."""

    def __init__(self, tokenizer, places):
        self.embodiment = type("Embodiment", (), {"action": tokenizer})()
        self.said = [tokenizer.encode(np.zeros(2), p) for p in places]

    def eval(self):
        return self

    def train(self):
        return self

    def said_places(self, observations):
        out, self.said = self.said[: len(observations)], self.said[len(observations) :]
        return np.stack(out)


def test_the_place_probe_counts_places_within_one_block_width_of_the_truth():
    tokenizer = EFM.build(EFMConfig(**POINTING)).embodiment.action
    chains = SceneChains(64)
    try:
        _, truth = chains.questions(1, np.arange(6), "blocks4")
        right = place_probe(SaysPlaces(tokenizer, truth), chains, 6, kinds=("blocks4",))
        off = truth.copy()
        off[:, 0] += [0.3, 0.0]  # the named object's place a third of the image off; the rest right
        wrong = place_probe(SaysPlaces(tokenizer, off), chains, 6, kinds=("blocks4",))
    finally:
        chains.close()
    assert right == {"blocks4/places": 1.0, "blocks4/places_target": 1.0, "blocks4/places_effector": 1.0}
    assert wrong == {**right, "blocks4/places": 0.0}
