"""Planning: which events go into which clip, when and how loud (every choice from one rng)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .constants import (
    CLIP_SAMPLES,
    CLIP_SECONDS,
    DEFAULT_CLASS_BALANCE,
    DEFAULT_EVENTS_PER_CLIP,
    DEFAULT_GAIN_DB_RANGE,
    MAX_VIDEO_START_S,
    SAMPLES_PER_MS,
    YTID_ALPHABET,
    YTID_LENGTH,
)
from .licences import licences_compatible
from .pack import ClipPlan, EventPlacement, SoundEvent


def _event_quotas(
    events: Sequence[SoundEvent], total: int, class_balance: float, rng: np.random.Generator
) -> np.ndarray:
    """How many times each event is used: total occurrences split by weight, largest remainder.

    The weight of an event is ``n ** -class_balance`` where n is the number of events sharing
    its most specific class: 0 uses every event equally (classes with many files dominate, as
    speech does in the pack), 1 uses every class equally (single-file classes repeat the same
    recording many times). In between, both every event and every class recur.
    """
    per_class = Counter(e.primary_mid for e in events)
    weights = np.array([per_class[e.primary_mid] ** -class_balance for e in events], dtype=float)
    exact = total * weights / weights.sum()
    quotas = np.floor(exact).astype(int)
    remainder = exact - quotas
    # Largest remainders get the leftover uses; a random key breaks ties reproducibly.
    order = np.lexsort((rng.random(len(events)), -remainder))
    quotas[order[: total - quotas.sum()]] += 1
    return quotas


def _fits(candidate: SoundEvent, chosen: Sequence[SoundEvent]) -> bool:
    if any(candidate.primary_mid == other.primary_mid for other in chosen):
        return False
    return licences_compatible([candidate.spdx, *(other.spdx for other in chosen)])


def _deal(pool: list[int], sizes: Sequence[int], events: Sequence[SoundEvent]) -> list[list[int]]:
    """Cut the shuffled pool of event uses into clips, keeping every clip valid.

    Each slot takes the next pool entry that fits the clip (distinct most specific classes,
    compatible licences), swapping it forward. When nothing left fits (only near the end),
    the next entry is exchanged with an event of an earlier clip where both sides fit.
    """
    clips: list[list[int]] = []
    cursor = 0
    for clip_index, size in enumerate(sizes):
        chosen: list[int] = []
        for _ in range(size):
            current = [events[i] for i in chosen]
            pick = next(
                (j for j in range(cursor, len(pool)) if _fits(events[pool[j]], current)), None
            )
            if pick is not None:
                pool[cursor], pool[pick] = pool[pick], pool[cursor]
                chosen.append(pool[cursor])
                cursor += 1
                continue
            incoming = pool[cursor]
            for earlier in clips:
                swap = next(
                    (
                        slot
                        for slot, old in enumerate(earlier)
                        if _fits(events[old], current)
                        and _fits(events[incoming], [events[i] for i in earlier if i != old])
                    ),
                    None,
                )
                if swap is not None:
                    earlier[swap], pool[cursor] = incoming, earlier[swap]
                    chosen.append(pool[cursor])
                    cursor += 1
                    break
            else:
                raise RuntimeError(
                    f"cannot complete clip {clip_index}: no event fits it; the manifest has too "
                    "few distinct classes for the requested events per clip"
                )
        clips.append(chosen)
    return clips


def _draw_ytids(n: int, rng: np.random.Generator) -> list[str]:
    alphabet = np.array(list(YTID_ALPHABET))
    ytids: list[str] = []
    seen: set[str] = set()
    while len(ytids) < n:
        for row in rng.integers(0, len(alphabet), size=(n - len(ytids), YTID_LENGTH)):
            ytid = "".join(alphabet[row])
            if ytid not in seen:
                seen.add(ytid)
                ytids.append(ytid)
    return ytids


def plan_mixtures(
    events: Sequence[SoundEvent],
    n_clips: int,
    rng: np.random.Generator,
    *,
    events_per_clip: Sequence[float] = DEFAULT_EVENTS_PER_CLIP,
    gain_db_range: tuple[float, float] = DEFAULT_GAIN_DB_RANGE,
    class_balance: float = DEFAULT_CLASS_BALANCE,
) -> list[ClipPlan]:
    """Decide every clip: its YTID, start time, events, onsets and gains (no audio touched).

    ``events_per_clip[k]`` is the probability of k + 1 events. Event uses follow fixed quotas
    (see ``_event_quotas``) dealt in a random order, so usage is balanced exactly rather than
    only in expectation. Within a clip the most specific classes differ and licences are
    compatible (``licences_compatible``). Onsets are uniform in whole ms over
    [0, 10 s - duration], gains uniform in ``gain_db_range`` rounded to 0.01 dB (the recipe
    stores exactly what is rendered).
    """
    probs = np.asarray(events_per_clip, dtype=float)
    if n_clips < 1:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    if probs.ndim != 1 or (probs < 0).any() or not math.isclose(probs.sum(), 1.0):
        raise ValueError(
            f"events_per_clip must be probabilities summing to 1, got {events_per_clip}"
        )
    if gain_db_range[0] > gain_db_range[1]:
        raise ValueError(f"gain_db_range must be (low, high), got {gain_db_range}")
    sizes = rng.choice(np.arange(1, len(probs) + 1), size=n_clips, p=probs)
    quotas = _event_quotas(events, int(sizes.sum()), class_balance, rng)
    pool = rng.permutation(np.repeat(np.arange(len(events)), quotas)).tolist()
    dealt = _deal(pool, sizes.tolist(), events)
    ytids = _draw_ytids(n_clips, rng)
    starts = rng.integers(0, MAX_VIDEO_START_S // CLIP_SECONDS, size=n_clips) * CLIP_SECONDS
    plans = []
    for ytid, start, members in zip(ytids, starts, dealt, strict=True):
        placements = []
        for index in members:
            event = events[index]
            latest_onset_ms = (CLIP_SAMPLES - event.n_samples) // SAMPLES_PER_MS
            placements.append(
                EventPlacement(
                    event=event,
                    onset_ms=int(rng.integers(0, latest_onset_ms + 1)),
                    gain_db=round(float(rng.uniform(*gain_db_range)), 2),
                )
            )
        placements.sort(key=lambda p: (p.onset_ms, p.event.file))
        plans.append(ClipPlan(ytid=ytid, start_s=int(start), events=tuple(placements)))
    return plans
