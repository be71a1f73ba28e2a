"""The paper's tokenizer (App. E): actions, joint states and steps-to-go <-> tokens.

Each tokenizer maps values to slot-local bins (0..size-1 per output slot), and slot bin b is
the vocabulary's ``<loc b>`` token (``slot_token_ids``; or a run of loc tokens per slot), in
the tiny vocabulary as in a real PaliGemma one. Out-of-range values are clipped and counted in
``clipped`` (a policy or dataset that often leaves the range should be noticed, not crash);
NaN is rejected because it means the caller's data is broken.

A LanguageTable step, worked through (0.01 m per unit, at most 10 units per axis):

>>> action = language_table_action()
>>> bins = action.encode([0.034, -0.052])  # [sign, units, sign, units]; sign 1 is negative
>>> bins.tolist()
[0, 3, 1, 5]
>>> [f"<loc{b:04d}>" for b in bins]  # the four tokens the model emits
['<loc0000>', '<loc0003>', '<loc0001>', '<loc0005>']
>>> action.decode(bins).tolist()  # back to metres, within half a unit
[0.03, -0.05]
>>> steps = language_table_steps()  # steps-to-go 0..100 in 50 bins; d uses the bin centres
>>> int(steps.encode([17.3])[0]), float(steps.decode(8))
(8, 17.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch


def _as_finite_or_inf(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if np.isnan(x).any():
        where = tuple(int(i) for i in np.argwhere(np.isnan(x))[0])
        raise ValueError(f"{what} contains NaN at index {where}; refusing to tokenize it")
    return x


def _check_indices(tokens, sizes: np.ndarray, what: str) -> np.ndarray:
    t = np.asarray(tokens)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{what} tokens must be integers, got {t.dtype}")
    if t.shape[-1:] != sizes.shape:
        raise ValueError(f"{what} expects {sizes.shape[0]} tokens per step, got shape {t.shape}")
    bad = (t < 0) | (t >= sizes)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} token {int(t[where])} at {where} is outside its slot's range")
    return t


@dataclass
class UniformBins:
    """``bins`` equal-width bins over [low, high]; decode returns the bin centre."""

    low: float
    high: float
    bins: int
    clipped: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"UniformBins needs high > low, got [{self.low}, {self.high}]")
        if self.bins < 1:
            raise ValueError(f"UniformBins needs at least one bin, got {self.bins}")

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.bins

    @property
    def centres(self) -> np.ndarray:
        return self.low + (np.arange(self.bins) + 0.5) * self.width

    @property
    def slot_sizes(self) -> tuple[int, ...]:
        return (self.bins,)

    def encode(self, values, what: str = "value") -> np.ndarray:
        x = _as_finite_or_inf(values, what)
        outside = (x < self.low) | (x > self.high)
        self.clipped += int(outside.sum())
        idx = np.floor((np.clip(x, self.low, self.high) - self.low) / self.width)
        return np.clip(idx, 0, self.bins - 1).astype(np.int64)

    def decode(self, tokens) -> np.ndarray:
        t = _check_indices(np.asarray(tokens)[..., None], np.array([self.bins]), "UniformBins")[..., 0]
        return self.centres[t]


@dataclass
class SignMagnitudeActionTokenizer:
    """LanguageTable: a 2-D end-effector delta as [sign, magnitude, sign, magnitude].

    Magnitudes are whole units (0.01 m) from 0 to ``max_units``, so the action box is
    [-max_units*unit, +max_units*unit] per axis and rounding error is at most unit/2.
    """

    unit: float = 0.01
    max_units: int = 10
    dims: int = 2
    clipped: int = field(default=0, compare=False)

    @property
    def slot_sizes(self) -> tuple[int, ...]:
        return (2, self.max_units + 1) * self.dims

    @property
    def limit(self) -> float:
        return self.unit * self.max_units

    def encode(self, actions) -> np.ndarray:
        a = _as_finite_or_inf(actions, "action")
        if a.shape[-1] != self.dims:
            raise ValueError(f"action must have {self.dims} components, got shape {a.shape}")
        self.clipped += int((np.abs(a) > self.limit).sum())
        units = np.rint(np.clip(np.abs(a), 0.0, self.limit) / self.unit).astype(np.int64)
        sign = ((a < 0) & (units > 0)).astype(np.int64)
        return np.stack([sign, units], axis=-1).reshape(*a.shape[:-1], 2 * self.dims)

    def decode(self, tokens) -> np.ndarray:
        t = _check_indices(tokens, np.array(self.slot_sizes), "sign/magnitude action")
        pairs = t.reshape(*t.shape[:-1], self.dims, 2)
        return np.where(pairs[..., 0] == 1, -1.0, 1.0) * pairs[..., 1] * self.unit


@dataclass
class JointTokenizer:
    """Joint vectors (a chunk of ``chunk`` steps of ``len(low)`` joints), normalised to [-1, 1]
    with per-joint stats and cut into ``bins`` uniform bins (ALOHA: 256 bins, chunk 5).

    The stats travel with the checkpoint: a model is only meaningful with the
    normalisation it was trained with.
    """

    low: Sequence[float]
    high: Sequence[float]
    bins: int = 256
    chunk: int = 1
    clipped: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self._low = np.asarray(self.low, dtype=np.float64)
        self._high = np.asarray(self.high, dtype=np.float64)
        if self._low.shape != self._high.shape or self._low.ndim != 1:
            raise ValueError("joint stats low/high must be equal-length 1-D lists")
        if not (self._high > self._low).all():
            j = int(np.argmin(self._high - self._low))
            raise ValueError(
                f"joint stats need high > low for every joint; joint {j} has [{self.low[j]}, {self.high[j]}]"
            )
        self._bins = UniformBins(-1.0, 1.0, self.bins)

    @classmethod
    def from_data(cls, values, bins: int = 256, chunk: int = 1, margin: float = 1e-3) -> JointTokenizer:
        """Stats from a dataset (rows = samples); constant joints get a small margin."""
        x = _as_finite_or_inf(values, "joint data")
        x = x.reshape(-1, x.shape[-1])
        low, high = x.min(axis=0) - margin, x.max(axis=0) + margin
        return cls(low=low.tolist(), high=high.tolist(), bins=bins, chunk=chunk)

    @property
    def dims(self) -> int:
        return int(self._low.shape[0])

    @property
    def slot_sizes(self) -> tuple[int, ...]:
        return (self.bins,) * (self.dims * self.chunk)

    def normalise(self, values) -> np.ndarray:
        x = _as_finite_or_inf(values, "joint values")
        return 2.0 * (x - self._low) / (self._high - self._low) - 1.0

    def encode(self, values) -> np.ndarray:
        x = self.normalise(values)
        if x.shape[-1] != self.dims or (self.chunk > 1 and x.shape[-2:-1] != (self.chunk,)):
            raise ValueError(f"expected (..., {self.chunk}, {self.dims}) joint values, got shape {x.shape}")
        before = self._bins.clipped
        t = self._bins.encode(x, "joint values")
        self.clipped += self._bins.clipped - before
        lead = x.shape[:-2] if self.chunk > 1 else x.shape[:-1]
        return t.reshape(*lead, self.chunk * self.dims)

    def decode(self, tokens) -> np.ndarray:
        t = _check_indices(tokens, np.array(self.slot_sizes), "joint")
        x = self._bins.centres[t]
        shape = (*t.shape[:-1], self.chunk, self.dims) if self.chunk > 1 else (*t.shape[:-1], self.dims)
        x = x.reshape(shape)
        return (x + 1.0) / 2.0 * (self._high - self._low) + self._low


class NeighbourTeaching(NamedTuple):
    """A chain's digits to say (``target``) and those teacher-forced before each (``fed``)."""

    target: np.ndarray
    fed: np.ndarray


@dataclass(frozen=True)
class PlaceTokenizer:
    """A place in the image, (column, row) in [0, 1], as one digit per axis for each of
    ``radices`` (cells per axis at that level), coarse first and rows before columns:
    ``[r1, c1, r0, c0]`` at the default 8 x 8 grid of 8 x 8 cells. Stage 0 answers every "where"
    question this way; one 64-way token per axis was not learned by the tiny model, two 8-way
    digits were (docs/results). ``(6, 4)`` writes which of the 96 px view's 6 x 6 patches, then
    where in it to 4 px."""

    radices: tuple[int, ...] = (8, 8)

    def __post_init__(self) -> None:
        if not self.radices or min(self.radices) < 2:
            raise ValueError(f"place radices must be integers >= 2, got {self.radices}")

    @property
    def slot_sizes(self) -> tuple[int, ...]:
        return tuple(r for r in self.radices for _ in range(2))

    @property
    def cells(self) -> int:
        return int(np.prod(self.radices))

    def encode(self, places) -> np.ndarray:
        """(..., 2) (column, row) -> (..., 2 * len(radices)) digits."""
        x = _as_finite_or_inf(places, "place")
        cell = np.clip((x * self.cells).astype(np.int64), 0, self.cells - 1)
        col, row = cell[..., 0], cell[..., 1]
        finer = [int(np.prod(self.radices[k + 1 :])) for k in range(len(self.radices))]
        digits = [(v // f) % r for r, f in zip(self.radices, finer, strict=True) for v in (row, col)]
        return np.stack(digits, axis=-1)

    def decode(self, tokens) -> np.ndarray:
        """(..., 2 * len(radices)) digits -> (..., 2) (column, row) at the cell's centre."""
        t = _check_indices(tokens, np.array(self.slot_sizes), "place")
        row = col = np.zeros(t.shape[:-1], dtype=np.int64)
        for k, r in enumerate(self.radices):
            row, col = row * r + t[..., 2 * k], col * r + t[..., 2 * k + 1]
        return np.stack([(col + 0.5) / self.cells, (row + 0.5) / self.cells], axis=-1)

    def neighbour_teaching(self, digits, rng: np.random.Generator, rate: float) -> NeighbourTeaching:
        """Teacher forcing for a coarse digit said one cell off. The 4-block chain's greedy failures
        repeat places read a whole cell off (docs/results, session 16). If the finer digits are read
        off the pixels whatever coarse digit came first, a coarse digit flipped at a cell's edge
        costs a whole cell. With probability ``rate`` per axis the coarse digit fed in is the
        neighbour toward the nearer edge and the finer digits to say are that edge's, so that a flip
        would cost the distance to the edge; the coarse digit's own target stays the true one.
        Measured once (0.3, 600 steps), it did not shrink those misreads."""
        if len(self.radices) < 2:
            raise ValueError(f"neighbour teaching needs a coarse and a finer digit, place radices are {self.radices}")
        target = np.array(digits, dtype=np.int64)
        fed = target.copy()
        finer = self.radices[1:]
        for axis in (0, 1):  # row, column
            within = np.zeros(target.shape[:-1], dtype=np.int64)
            for k, r in enumerate(finer):
                within = within * r + target[..., 2 * (k + 1) + axis]
            step = np.where(2 * within >= int(np.prod(finer)), 1, -1)
            shifted = target[..., axis] + step
            flip = (rng.random(shifted.shape) < rate) & (shifted >= 0) & (shifted < self.radices[0])
            fed[..., axis] = np.where(flip, shifted, target[..., axis])
            for k, r in enumerate(finer):
                edge = np.where(flip, np.where(step > 0, 0, r - 1), target[..., 2 * (k + 1) + axis])
                fed[..., 2 * (k + 1) + axis] = target[..., 2 * (k + 1) + axis] = edge
        return NeighbourTeaching(target, fed)


@dataclass
class GroundedActionTokenizer:
    """An action that first says where things are (embodied chain-of-thought, Zawalski et al.
    2024): the places of the object to move, its target and the effector, each as Stage 0
    writes a place, then the planar action. The policy reads its own pointing before it acts, so
    the action is a function of tokens it has just emitted rather than of the pixels alone.
    ``decode`` returns the action; the places are only the policy's reasoning."""

    action: SignMagnitudeActionTokenizer
    places: int = 3
    place: PlaceTokenizer = field(default_factory=PlaceTokenizer)

    @property
    def slot_sizes(self) -> tuple[int, ...]:
        return self.place.slot_sizes * self.places + self.action.slot_sizes

    @property
    def limit(self) -> float:
        return self.action.limit

    @property
    def dims(self) -> int:
        return self.action.dims

    @property
    def clipped(self) -> int:
        return self.action.clipped

    def encode(self, actions, places) -> np.ndarray:
        """``actions`` (..., 2) metres and ``places`` (..., places, 2) (column, row) -> tokens."""
        return np.concatenate([self.encode_places(places), self.action.encode(actions)], axis=-1)

    def encode_places(self, places) -> np.ndarray:
        """``places`` (..., places, 2) (column, row) -> the chain's place tokens (..., places * digits)."""
        where = self.place.encode(places)
        if where.shape[-2] != self.places:
            raise ValueError(f"expected {self.places} places per step, got shape {np.shape(places)}")
        return where.reshape(*where.shape[:-2], -1)

    def decode(self, tokens) -> np.ndarray:
        return self.action.decode(np.asarray(tokens)[..., -len(self.action.slot_sizes) :])

    @property
    def coarse_place_slots(self) -> tuple[int, ...]:
        """Slots of each place's first digit pair: which patch it is in, not where in it."""
        per = len(self.place.slot_sizes)
        return tuple(p * per + k for p in range(self.places) for k in (0, 1))

    def neighbour_teaching(self, tokens, rng: np.random.Generator, rate: float) -> NeighbourTeaching:
        """``PlaceTokenizer.neighbour_teaching`` for each place of the chain; the action's slots as given."""
        target = np.array(tokens, dtype=np.int64)
        fed = target.copy()
        per = len(self.place.slot_sizes)
        for p in range(self.places):
            where = slice(p * per, (p + 1) * per)
            target[..., where], fed[..., where] = self.place.neighbour_teaching(target[..., where], rng, rate)
        return NeighbourTeaching(target, fed)

    def decode_places(self, tokens) -> np.ndarray:
        """(..., places, 2) (column, row): where the policy said things are."""
        per = len(self.place.slot_sizes)
        t = np.asarray(tokens)[..., : per * self.places]
        return self.place.decode(t.reshape(*t.shape[:-1], self.places, per))


def language_table_action() -> SignMagnitudeActionTokenizer:
    """LanguageTable's planar delta: 0.01 m per unit, at most 10 units per axis (0.1 m a step)."""
    return SignMagnitudeActionTokenizer(unit=0.01, max_units=10)


def one_bin_per_step(most: int) -> UniformBins:
    """Steps-to-go 0..most, one token per value (bins of width 1 centred on the integers)."""
    return UniformBins(-0.5, most + 0.5, most + 1)


def language_table_steps(per_bin: int = 2) -> UniformBins:
    """LanguageTable's steps-to-go: 0..100 in 50 bins (the paper's), or one bin per value 0..100."""
    if per_bin == 1:
        return one_bin_per_step(100)
    if per_bin == 2:
        return UniformBins(0.0, 100.0, 50)
    raise ValueError(f"LanguageTable's steps-to-go bins hold 1 or 2 steps, not {per_bin}")


def aloha_steps() -> UniformBins:
    """ALOHA's steps-to-go: one token per value 0..300."""
    return one_bin_per_step(300)


def slot_token_ids(sizes: Sequence[int], loc_ids: torch.Tensor, per_slot: bool = False) -> torch.Tensor:
    """(slots, max size) vocabulary ids of each output slot's bins. Shared (the paper's and
    PaliGemma's way): bin b of any slot is ``<loc b>``. Per slot: each slot's bins take the next
    run of loc tokens, so a token also says which slot it fills; a decoder with rotary positions
    alone otherwise sees the same vector for digit 3 of the effector's column as of the object's
    row. Rows are padded with their last id (padding bins are masked out by the model)."""
    width = max(sizes)
    if per_slot and sum(sizes) > len(loc_ids):
        raise ValueError(f"slot_tokens: per_slot needs {sum(sizes)} loc tokens, the vocabulary has {len(loc_ids)}")
    starts = np.cumsum([0, *sizes[:-1]]) if per_slot else np.zeros(len(sizes), int)
    index = [[start + min(b, size - 1) for b in range(width)] for start, size in zip(starts, sizes, strict=True)]
    return loc_ids[torch.tensor(index, dtype=torch.long)]
