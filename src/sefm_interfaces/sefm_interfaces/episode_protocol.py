"""The episode protocol: what travels as JSON inside standard messages (no .msg package to build).

``episode/events`` (std_msgs/String) carries start, end, pause and resume; ``policy/version`` and
``/sefm/policy_checkpoint`` (std_msgs/String) carry a checkpoint's path and version; the replies of
``sim/reset`` and ``episode/pause`` (std_srvs) carry a task and a pause outcome. Every node encodes
and decodes them here, so each field has one name and a malformed message one error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from .typed_config import UsageError

FORMAT = "sefm-episode/1"
TERMINATIONS = ("success", "max_steps", "abort", "error")


class ProtocolError(UsageError):
    """A message of the episode protocol that does not parse; the text says which and why."""


@dataclass
class EpisodeMeta:
    """What an episode was: the ``end`` event's metadata and a bag's ``custom_data``."""

    instruction: str
    embodiment: str
    length: int  # number of actions; the bag holds length + 1 frames per camera
    success: bool | None  # ground truth where known (the sim's verdict on the final frame), else None
    termination: str
    seed: int | None = None
    policy_version: int | str | None = None
    task_family: str | None = None
    namespace: str = "/robot_0"
    cameras: list[str] = field(default_factory=lambda: ["front"])
    control_hz: float = 10.0
    format: str = FORMAT
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.termination not in TERMINATIONS:
            raise ValueError(f"termination must be one of {TERMINATIONS}, got {self.termination!r}")
        if self.length < 0:
            raise ValueError(f"length must be >= 0, got {self.length}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EpisodeMeta:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeMeta:
        """Unknown keys are dropped: a newer writer's fields must not stop an older reader."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Message(BaseModel):
    """Unknown fields are ignored, as ``EpisodeMeta.from_dict`` drops them: bags outlive versions."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SimTask(Message):
    """The ``sim/reset`` reply: the task the sim has just set up."""

    instruction: str
    seed: int | None = None
    task_family: str | None = None


class EpisodeStart(SimTask):
    """The manager's start of a robot's episode; a demonstration's bag (datagen, rig import) opens
    with one too, naming only what it knows."""

    event: Literal["start"] = "start"
    episode_id: int | None = None
    embodiment: str | None = None
    namespace: str | None = None
    cameras: list[str] = Field(default_factory=list)
    policy_version: int | str | None = None
    source: str | None = None  # rig import: the recording it was cut from


class EpisodeEnd(Message):
    event: Literal["end"] = "end"
    episode_id: int | None = None
    metadata: dict  # an EpisodeMeta as a dict (``meta``), kept whole for the bag

    @model_validator(mode="after")
    def _metadata_is_an_episode(self) -> EpisodeEnd:
        try:
            self.meta  # noqa: B018
        except TypeError as err:
            raise ValueError(f"metadata is not an episode's: {err}") from None
        return self

    @property
    def meta(self) -> EpisodeMeta:
        return EpisodeMeta.from_dict(self.metadata)


class PauseChange(Message):
    event: Literal["pause", "resume"]


EpisodeEvent = Annotated[EpisodeStart | EpisodeEnd | PauseChange, Field(discriminator="event")]
_EVENT = TypeAdapter(EpisodeEvent)
M = TypeVar("M", bound=Message)


class CheckpointInfo(Message):
    """``/sefm/policy_checkpoint`` (act with this one now) and ``policy/version`` (acting with it)."""

    path: str
    version: int | str | None = None


class PauseReply(Message):
    """The ``episode/pause`` reply: whether pausing cut an episode short (its bag is then coming)."""

    paused: bool
    aborted_episode: int | None = None


def encode(message: Message) -> str:
    return json.dumps(message.model_dump(mode="json", exclude_none=True), sort_keys=True)


def decode_event(text: str) -> EpisodeStart | EpisodeEnd | PauseChange:
    try:
        return _EVENT.validate_json(text)
    except ValidationError as err:
        raise ProtocolError(f"not an episode event: {text[:200]!r} ({err.errors()[0]['msg']})") from None


def decode(text: str, kind: type[M]) -> M:
    try:
        return kind.model_validate_json(text)
    except ValidationError as err:
        raise ProtocolError(f"not a {kind.__name__}: {text[:200]!r} ({err.errors()[0]['msg']})") from None
