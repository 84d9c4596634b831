"""Procedural subjects: a seed fixes body proportions, colours, clothes and the room they dance in.

All lengths are metres of the subject's own body; colours are RGB tuples.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

HAIR_STYLES = ("short", "long", "bun", "curly", "ponytail")
TOP_STYLES = ("tshirt", "longsleeve", "tank")
PATTERNS = ("stripes", "logo", "chevron", "plain")
BOTTOM_STYLES = ("trousers", "shorts", "skirt")

_SKIN_TONES: tuple[RGB, ...] = (
    (255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 140, 100),
    (168, 110, 74), (141, 85, 55), (110, 66, 42), (232, 190, 150),
)
_HAIR_COLOURS: tuple[RGB, ...] = (
    (30, 22, 18), (58, 38, 24), (96, 62, 34), (150, 100, 50),
    (196, 156, 88), (120, 40, 20), (70, 70, 72), (20, 20, 24),
)


@dataclass(frozen=True)
class Scene:
    """The room behind the dancer: wall, floor and their colours (static camera)."""

    seed: int
    wall: RGB
    wall_trim: RGB
    floor: RGB
    floor_line: RGB
    plank_count: int          # floor boards across the frame
    poster: bool              # a framed picture on the wall
    poster_color: RGB


@dataclass(frozen=True)
class Subject:
    """One procedural person. Lengths in metres; `girth` scales limb and torso widths."""

    seed: int
    height: float
    # skeleton (keypoint-to-keypoint lengths)
    torso: float            # MidHip -> Neck
    neck: float             # Neck -> head pivot
    head: float             # chin -> crown
    shoulder_half: float    # Neck -> shoulder joint
    hip_half: float         # MidHip -> hip joint
    upper_arm: float
    forearm: float
    hand: float             # wrist -> middle fingertip
    thigh: float
    shin: float
    ankle_height: float
    foot: float             # heel -> big toe
    girth: float
    # looks
    skin: RGB
    hair: RGB
    eyes: RGB
    lips: RGB
    top: RGB
    top_accent: RGB
    bottom: RGB
    shoes: RGB
    belt_color: RGB
    hair_style: str
    top_style: str
    pattern: str
    bottom_style: str
    belt: bool
    scene: Scene

    @property
    def leg(self) -> float:
        """Hip joint to ankle, straight leg."""
        return self.thigh + self.shin

    @property
    def hip_height(self) -> float:
        """Height of the hip joints above the floor when standing straight."""
        return self.leg + self.ankle_height


def check_seed(seed: int) -> int:
    """A seed as a non-negative int (ValueError otherwise)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _far_from(rng: np.random.Generator, avoid: list[RGB], s_range: tuple[float, float],
              v_range: tuple[float, float], min_dist: float = 90.0) -> RGB:
    """A random colour at least `min_dist` (RGB distance) from every colour in `avoid`."""
    best, best_d = None, -1.0
    for _ in range(24):
        c = _hsv(rng.random(), rng.uniform(*s_range), rng.uniform(*v_range))
        d = min(float(np.linalg.norm(np.subtract(c, a))) for a in avoid) if avoid else 1e9
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    assert best is not None
    return best


def make_scene(seed: int) -> Scene:
    """A room for `seed`: pale wall, darker floor, a skirting board, maybe a picture."""
    rng = np.random.default_rng([check_seed(seed), 0x5CE4E])
    hue = rng.random()
    wall = _hsv(hue, rng.uniform(0.05, 0.25), rng.uniform(0.72, 0.9))
    floor = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6))
    return Scene(
        seed=int(seed),
        wall=wall,
        wall_trim=_hsv(hue, 0.1, 0.95),
        floor=floor,
        floor_line=tuple(int(c * 0.7) for c in floor),  # type: ignore[arg-type]
        plank_count=int(rng.integers(7, 14)),
        poster=bool(rng.random() < 0.6),
        poster_color=_hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.8)),
    )


def make_subject(seed: int) -> Subject:
    """The person of `seed`: proportions (height 1.55-1.95 m), skin, hair, clothes and room.

    Deterministic: the same seed gives an equal Subject; different seeds give visibly different people.
    """
    seed = check_seed(seed)
    rng = np.random.default_rng([seed, 0x5B1EC7])
    h = rng.uniform(1.55, 1.95)

    def frac(mean: float, spread: float = 0.05) -> float:
        return float(h * mean * (1.0 + rng.uniform(-spread, spread)))

    skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    skin = tuple(int(np.clip(c * rng.uniform(0.95, 1.04), 0, 255)) for c in skin)  # type: ignore[assignment]
    hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
    # clothes: saturated enough to stand out from the skin and from each other
    top = _far_from(rng, [skin, hair], (0.45, 0.9), (0.45, 0.95), 110.0)
    accent = _far_from(rng, [top], (0.0, 0.9), (0.15, 1.0), 120.0)
    bottom = _far_from(rng, [top, skin], (0.2, 0.7), (0.15, 0.6), 90.0)
    shoes = _far_from(rng, [bottom], (0.0, 0.6), (0.1, 0.95), 80.0)
    belt_color = _hsv(rng.uniform(0.05, 0.1), 0.6, rng.uniform(0.15, 0.35))
    lips = tuple(int(np.clip(c, 0, 255)) for c in (skin[0] * 0.85, skin[1] * 0.55, skin[2] * 0.55))
    eyes = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))] if rng.random() < 0.7 else _hsv(
        rng.uniform(0.45, 0.65), 0.6, 0.5)
    bottom_style = BOTTOM_STYLES[int(rng.choice(3, p=[0.55, 0.25, 0.2]))]
    return Subject(
        seed=seed,
        height=float(h),
        torso=frac(0.290),
        neck=frac(0.062),
        head=frac(0.130, 0.06),
        shoulder_half=frac(0.100, 0.08),
        hip_half=frac(0.072, 0.08),
        upper_arm=frac(0.186),
        forearm=frac(0.150),
        hand=frac(0.105),
        thigh=frac(0.245),
        shin=frac(0.246),
        ankle_height=frac(0.040, 0.02),
        foot=frac(0.140),
        girth=float(rng.uniform(0.85, 1.2)),
        skin=skin,  # type: ignore[arg-type]
        hair=hair,
        eyes=eyes,
        lips=lips,  # type: ignore[arg-type]
        top=top,
        top_accent=accent,
        bottom=bottom,
        shoes=shoes,
        belt_color=belt_color,
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        top_style=TOP_STYLES[int(rng.integers(len(TOP_STYLES)))],
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        bottom_style=bottom_style,
        belt=bool(rng.random() < 0.5) and bottom_style != "skirt",
        scene=make_scene(seed),
    )
