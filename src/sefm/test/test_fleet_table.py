from dataclasses import asdict

from sefm.fleet_table import FleetTable
from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeMeta, EpisodeStart, PauseChange, decode_event, encode


def test_the_table_follows_each_robots_episodes_from_the_protocols_events():
    table = FleetTable()
    meta = EpisodeMeta(instruction="push the red moon to the blue cube", embodiment="language_table", length=7,
                       success=None, termination="success", extra={"detected_success": True})  # fmt: skip
    for event in (
        EpisodeStart(instruction=meta.instruction, episode_id=3),
        EpisodeEnd(episode_id=3, metadata=asdict(meta)),
    ):
        table.on_event("/robot_1", decode_event(encode(event)))
    table.on_action("/robot_0")
    table.on_event("/robot_0", PauseChange(event="pause"))
    one, zero = table.rows["/robot_1"], table.rows["/robot_0"]
    assert (one.episode, one.episodes_done, one.detections, one.last_end) == (3, 1, 1, "success @ 7")
    assert zero.paused and zero.step == 1 and zero.episodes_done == 0
    table.on_event("/robot_0", PauseChange(event="resume"))
    assert not zero.paused
