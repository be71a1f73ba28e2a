import json
import subprocess
import sys

import pytest

from sefm_interfaces.episode_protocol import (
    CheckpointInfo,
    EpisodeEnd,
    EpisodeMeta,
    EpisodeStart,
    PauseChange,
    PauseReply,
    ProtocolError,
    SimTask,
    decode,
    decode_event,
    encode,
)

META = EpisodeMeta(instruction="push the red moon to the blue cube", embodiment="language_table", length=7,
                   success=None, termination="success", extra={"detected_success": True})  # fmt: skip


@pytest.mark.parametrize(
    "event",
    [
        EpisodeStart(
            instruction="push the red moon",
            episode_id=3,
            embodiment="language_table",
            namespace="/r0",
            cameras=["front"],
            seed=12,
            policy_version=2,
        ),
        EpisodeEnd(episode_id=3, metadata=json.loads(META.to_json())),
        PauseChange(event="pause"),
        PauseChange(event="resume"),
    ],
)
def test_every_episode_event_decodes_to_what_was_encoded(event):
    assert decode_event(encode(event)) == event


def test_an_end_event_carries_the_episode_metadata_whole():
    event = decode_event(encode(EpisodeEnd(episode_id=1, metadata=json.loads(META.to_json()))))
    assert event.meta == META


def test_replies_and_announcements_round_trip():
    for message in (SimTask(instruction="x", seed=4, task_family="block2block"), PauseReply(paused=True,
                    aborted_episode=5), CheckpointInfo(path="/ckpt/v3", version=3)):  # fmt: skip
        assert decode(encode(message), type(message)) == message


def test_a_newer_writers_extra_fields_do_not_stop_a_reader():
    text = json.dumps({"event": "start", "instruction": "x", "from_the_future": 1})
    assert decode_event(text) == EpisodeStart(instruction="x")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not an episode event"),
        ('{"event": "explode"}', "explode"),
        ('{"event": "end", "metadata": {"instruction": "x"}}', "metadata is not an episode's"),
        (
            '{"event": "end", "metadata": {"instruction": "x", "embodiment": "e", "length": 1, "success": null, '
            '"termination": "bored"}}',
            "termination must be one of",
        ),
    ],
)
def test_a_malformed_event_is_a_protocol_error_that_says_why(text, says):
    with pytest.raises(ProtocolError, match=says):
        decode_event(text)


def test_a_checkpoint_announcement_without_a_path_is_refused():
    with pytest.raises(ProtocolError, match="CheckpointInfo"):
        decode('{"version": 3}', CheckpointInfo)


def test_the_interfaces_package_imports_neither_torch_nor_transformers():
    code = (
        "import sys, sefm_interfaces.ros_common, sefm_interfaces.episode_protocol, sefm_interfaces.typed_config;"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
