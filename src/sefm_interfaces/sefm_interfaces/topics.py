"""Names of the ROS interfaces (docs/design.md, "ROS interfaces"), relative to a robot's namespace unless absolute."""

INSTRUCTION = "instruction"
JOINT_STATES = "joint_states"
EFFECTOR_POSE = "effector_pose"
ACTION_TOKENS = "policy/action_tokens"
COMMAND = "policy/command"
POLICY_VERSION = "policy/version"  # std_msgs/String JSON {path, version}: what the policy acts with now
STEPS_TO_GO = "reward/steps_to_go"
REWARD = "reward/reward"
# std_msgs/Header per frame judged, like SIM_SUCCESS: stamp = the frame, frame_id a VERDICTS key.
SUCCESS = "reward/success"
MARKERS = "reward/markers"
EVENTS = "episode/events"
HEARTBEAT = "episode/heartbeat"  # std_msgs/Bool, a few times a period: the supervisor lives; data: an episode runs
RESET = "episode/reset"
ABORT = "episode/abort"
PAUSE = "episode/pause"
ESTOP = "estop"
CHECKPOINT = "/sefm/policy_checkpoint"
# Simulation only: the sim bridge's reset and its ground-truth success (for evaluation).
SIM_RESET = "sim/reset"
# std_msgs/Header per frame (std_msgs has no stamped Bool): stamp = the frame judged, frame_id
# "success" or "failure". Recorded in the bag; the reader takes the final frame's verdict.
SIM_SUCCESS = "sim/success"
VERDICTS = {"success": True, "failure": False}
# Demonstration bags (sefm datagen): a visualization_msgs/MarkerArray per frame, stamped like it,
# one marker per object on the board, ``ns`` its name, ``pose.position`` its place (m): where
# things are on each frame, for grounding targets and evaluation. RViz and Foxglove draw it.
SIM_OBJECTS = "sim/objects"


def camera_topic(camera: str) -> str:
    return f"camera/{camera}/image_raw"
