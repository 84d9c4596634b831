"""Seeded procedural dances: joint-angle keyframes on the beat plus planned foot steps.

A :class:`Dance` is subject-independent: joint angles in radians, and the ground point of each
ankle in metres for a reference body whose leg (hip joint to ankle) is :data:`REF_LEG` long,
in a world seen by a static camera (x to the image right, depth away from the camera).
Posing a subject on it (:func:`dancenow.synthetic.skeleton.pose_world`) scales the foot
travel by the subject's leg length, so feet planted on the floor never slide.

Every 8 beats a new arm move and a new leg move start (pump, wave, clap, roof, disco,
circles, hips / bounce, step-touch, travel, march, kick, grapevine); angles are eased between
keyframes on each beat, so trajectories are smooth (C1) and hit the beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dancenow.synthetic.subject import check_seed

REF_LEG = 0.86            # metres, hip joint to ankle of the reference body
HOME_DEPTH = 4.6          # metres from the camera of the dance's home position
DEPTH_RANGE = (3.9, 5.5)  # where the pelvis may go (depth, metres)
STEP_TIME = 0.7           # fraction of a beat a stepping foot is in the air

ARM_KEYS = ("abd", "flex", "elbow", "plane", "wrist", "curl")
"""Per arm: abduction (0 hanging, pi/2 out sideways, pi up), forward flexion, elbow bend,
elbow plane (0: forearm bends up/forward, pi/2: inward, pi: down), wrist flex, finger curl (0 open, 1 fist)."""
BODY_KEYS = ("yaw", "torso_roll", "torso_pitch", "head_yaw", "head_roll", "head_pitch",
             "crouch", "sway", "mouth", "smile", "blink")
"""yaw: body turn to the person's left (rad); torso_roll: lean to the person's left; torso_pitch:
lean forward; head_*: relative to the torso (pitch > 0 nods down); crouch: pelvis drop (m, reference
body); sway: pelvis shift to the person's left (m); mouth, smile, blink: 0..1."""
CHANNELS: tuple[str, ...] = BODY_KEYS + tuple(f"{s}_{k}" for s in ("r", "l") for k in ARM_KEYS)
_CH = {name: i for i, name in enumerate(CHANNELS)}

ARM_MOVES = ("pump", "wave", "clap", "roof", "disco", "circles", "hips", "punch")
LEG_MOVES = ("bounce", "step_touch", "travel", "march", "kick", "grapevine")
_LEG_P = (0.12, 0.16, 0.32, 0.12, 0.14, 0.14)

# (abd, flex, elbow, plane, wrist, curl)
_REST = (0.18, 0.05, 0.3, 0.0, 0.05, 0.35)
_ON_HIP = (0.7, -0.4, 1.6, 2.7, 0.4, 0.55)


@dataclass(frozen=True, eq=False)
class Dance:
    """A subject-independent motion.

    timestamps: (T,) seconds. angles: (T, C) values of :data:`CHANNELS`.
    feet: (T, 2, 3) ankle ground point of the [right, left] foot: (x m, lift m, depth m), reference body.
    pelvis: (T, 2) floor point (x m, depth m) under the pelvis: between the feet, ignoring kicks.
    contact: (T, 2) bool, foot on the floor. moves: (arm move, leg move) per 8-beat segment.
    """

    seed: int
    fps: float
    bpm: float
    timestamps: np.ndarray
    angles: np.ndarray
    feet: np.ndarray
    pelvis: np.ndarray
    contact: np.ndarray
    moves: tuple[tuple[str, str], ...]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def n_frames(self) -> int:
        return len(self)

    def channel(self, name: str) -> np.ndarray:
        """(T,) values of one channel of :data:`CHANNELS`."""
        return self.angles[:, _CH[name]]

    @property
    def standing(self) -> np.ndarray:
        """(T,) bool: both feet on the floor (no step in flight)."""
        return self.contact.all(axis=1)

    @property
    def beats(self) -> np.ndarray:
        """(T,) beat number (float) of each frame."""
        return self.timestamps * self.bpm / 60.0


# ------------------------------------------------------------------ arm keyframes
def _arm_move(name: str, rng: np.random.Generator) -> list[tuple[tuple[float, ...], tuple[float, ...], dict]]:
    """8 keyframes (right arm, left arm, body extras) for one arm move."""
    j = lambda a: float(a + rng.uniform(-0.12, 0.12))  # noqa: E731 - small per-move jitter
    keys: list[tuple[tuple[float, ...], tuple[float, ...], dict]] = []
    lead = int(rng.integers(2))
    for k in range(8):
        on = k % 2 == 0
        if name == "pump":
            side = (k // 2 + lead) % 2
            up = (j(2.55), 0.15, j(0.15), 0.0, 0.0, 0.95) if on else (j(1.6), 0.1, j(1.5), 0.0, -0.3, 0.95)
            arms = (up, _ON_HIP) if side == 0 else (_ON_HIP, up)
            extra = {"torso_roll": 0.06 * (1 if side else -1), "head_pitch": 0.12 if on else -0.02}
        elif name == "wave":
            a = (j(2.0), 0.1, j(0.55), 0.0, 0.45, 0.1)
            b = (j(1.15), 0.1, j(0.65), math.pi, -0.45, 0.1)
            arms = (a, b) if on else (b, a)
            extra = {"torso_roll": 0.08 if on else -0.08, "head_roll": -0.08 if on else 0.08}
        elif name == "clap":
            open_ = (j(0.95), 0.45, j(0.45), 0.0, 0.1, 0.1)
            shut = (0.42, j(0.75), 1.45, math.pi / 2, 0.2, 0.05)
            arms = (shut, shut) if on else (open_, open_)
            extra = {"head_pitch": 0.15 if on else -0.05, "mouth": 0.5 if on else 0.1}
        elif name == "roof":
            post = (j(1.62), 0.1, j(1.55), 0.0, -0.9, 0.05)
            up = (j(2.65), 0.1, j(0.3), 0.0, -1.0, 0.05)
            arms = (up, up) if on else (post, post)
            extra = {"head_pitch": -0.12 if on else 0.1, "smile": 1.0}
        elif name == "disco":
            side = (k // 4 + lead) % 2
            point = (j(2.45), 0.2, 0.08, 0.0, 0.0, 0.75) if on else (-0.22, j(0.55), 0.12, 0.0, 0.0, 0.75)
            arms = (point, _ON_HIP) if side == 0 else (_ON_HIP, point)
            extra = {"head_yaw": (0.25 if on else -0.1) * (1 if side else -1), "torso_roll": 0.05}
        elif name == "circles":
            ph = math.pi / 2 * k
            arm = (1.5 + 1.05 * math.cos(ph), 0.45 * math.sin(ph), j(0.35), 0.0, 0.2, 0.2)
            arm2 = (1.5 + 1.05 * math.cos(ph + math.pi), 0.45 * math.sin(ph + math.pi), j(0.35), 0.0, 0.2, 0.2)
            arms = (arm, arm2)
            extra = {"torso_roll": 0.06 * math.cos(ph)}
        elif name == "hips":
            arms = (_ON_HIP, _ON_HIP)
            extra = {"torso_roll": 0.1 if on else -0.1, "head_roll": -0.1 if on else 0.1, "sway": 0.05 if on else -0.05}
        elif name == "punch":
            side = (k + lead) % 2
            hit = (j(1.45), 0.55, 0.15, 0.0, 0.0, 1.0)
            guard = (0.55, 0.9, 2.0, math.pi / 2, 0.0, 1.0)
            arms = (hit, guard) if side == 0 else (guard, hit)
            extra = {"yaw": 0.12 if side == 0 else -0.12, "mouth": 0.3}
        else:
            raise ValueError(f"unknown arm move {name!r}")
        keys.append((tuple(map(float, arms[0])), tuple(map(float, arms[1])), extra))
    return keys


# ------------------------------------------------------------------ foot steps
@dataclass(frozen=True)
class _Step:
    foot: int            # 0 right, 1 left
    b0: float            # beat the foot lifts off
    b1: float            # beat it lands
    p0: tuple[float, float]  # (x, depth) take-off
    p1: tuple[float, float]  # (x, depth) landing
    lift: float          # peak height (m)
    out: tuple[float, float] = (0.0, 0.0)  # extra (x, depth) excursion at mid-flight (kicks)


class _StepPlanner:
    """Plans world foot positions so the feet never cross and the dancer stays in view."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.half = float(rng.uniform(0.12, 0.16))  # half stance width
        self.pos = [(-self.half, HOME_DEPTH), (self.half, HOME_DEPTH)]  # right foot at smaller x
        self.steps: list[_Step] = []
        self.crouch_keys: dict[int, float] = {}

    def _x_limit(self, depth: float) -> float:
        # square frame, focal 1.15 frame heights: keep the body (+-0.9 m with arms out) in view
        return max(0.2, 0.5 * depth / 1.15 - 0.95)

    def _centre(self) -> tuple[float, float]:
        return ((self.pos[0][0] + self.pos[1][0]) / 2, (self.pos[0][1] + self.pos[1][1]) / 2)

    def _in_bounds(self, x: float, d: float) -> bool:
        return DEPTH_RANGE[0] <= d <= DEPTH_RANGE[1] and abs(x) <= self._x_limit(d)

    def _step(self, foot: int, beat: float, to: tuple[float, float], lift: float = 0.07,
              out: tuple[float, float] = (0.0, 0.0), dur: float = STEP_TIME) -> None:
        other = self.pos[1 - foot]
        x, d = to
        gap = 0.18  # ankles at least this far apart, right foot to the right (smaller x)
        x = min(x, other[0] - gap) if foot == 0 else max(x, other[0] + gap)
        self.steps.append(_Step(foot, beat, beat + dur, self.pos[foot], (x, d), lift, out))
        self.pos[foot] = (x, d)

    def _close(self, foot: int, beat: float, lift: float = 0.06) -> None:
        """Bring `foot` next to the other one at the normal stance width."""
        ox, od = self.pos[1 - foot]
        self._step(foot, beat, (ox + (2 * self.half if foot == 1 else -2 * self.half), od), lift)

    def plan(self, name: str, start: int) -> None:
        rng = self.rng
        stride = float(rng.uniform(0.22, 0.36))
        if name == "bounce":
            for k in range(8):
                self.crouch_keys[start + k] = 0.07 if k % 2 == 0 else 0.01
        elif name == "step_touch":
            for k in range(0, 8, 2):
                lead = (k // 2) % 2  # right foot leads out to the right, then left to the left
                x, d = self.pos[lead]
                self._step(lead, start + k, (x + (-stride if lead == 0 else stride), d))
                self._close(1 - lead, start + k + 1)
                self.crouch_keys[start + k] = 0.05
        elif name in ("travel", "grapevine"):
            cx, cd = self._centre()
            lo, hi = DEPTH_RANGE
            for _ in range(12):  # a reachable target inside the floor area; travel crosses the depth range
                tx = float(rng.uniform(-1, 1)) * self._x_limit(cd) * (0.5 if name == "travel" else 1.0)
                if name == "travel":
                    far_half = (lo + (hi - lo) * 0.75, hi) if cd < (lo + hi) / 2 else (lo, lo + (hi - lo) * 0.25)
                    td = float(rng.uniform(*far_half))
                else:
                    td = cd
                if self._in_bounds(tx, td):
                    break
            v = np.array([tx - cx, td - cd])
            n = float(np.linalg.norm(v))
            dirn = v / n if n > 1e-6 else np.array([1.0, 0.0])
            per_pair = min(0.42, n / 4) if name == "travel" else min(stride, n / 2)
            pairs = 4 if name == "travel" else 2
            for p in range(pairs):
                beat = start + (2 * p if name == "travel" else 4 * p)
                lead = 0 if dirn[0] < 0 else 1
                if abs(dirn[0]) < 0.3:
                    lead = p % 2
                lx, ld = self.pos[lead]
                self._step(lead, beat, (lx + dirn[0] * per_pair, ld + dirn[1] * per_pair))
                tx2, td2 = self.pos[1 - lead]
                self._step(1 - lead, beat + 1, (tx2 + dirn[0] * per_pair, td2 + dirn[1] * per_pair))
                if name == "grapevine":  # tap the trailing foot, then come back next bar
                    self._step(1 - lead, beat + 2, self.pos[1 - lead], lift=0.12, dur=0.5)
                    self.crouch_keys[beat + 3] = 0.06
        elif name == "march":
            for k in range(8):
                self._step(k % 2, start + k, self.pos[k % 2], lift=float(rng.uniform(0.14, 0.22)), dur=0.8)
        elif name == "kick":
            for k in range(0, 8, 2):
                foot = (k // 2) % 2
                side = -1.0 if foot == 0 else 1.0
                out = (side * float(rng.uniform(0.15, 0.3)), -float(rng.uniform(0.0, 0.25)))
                self._step(foot, start + k, self.pos[foot], lift=float(rng.uniform(0.22, 0.32)), out=out, dur=0.85)
                self.crouch_keys[start + k + 1] = 0.06
        else:
            raise ValueError(f"unknown leg move {name!r}")


def _ease(s: np.ndarray) -> np.ndarray:
    return s * s * (3.0 - 2.0 * s)


def _interp_keys(beats: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Eased interpolation of per-beat keyframes. beats: (T,), keys: (K, C) -> (T, C)."""
    k = np.clip(np.floor(beats).astype(np.int64), 0, len(keys) - 2)
    s = _ease(np.clip(beats - k, 0.0, 1.0))[:, None]
    return keys[k] + (keys[k + 1] - keys[k]) * s


def _feet_track(beats: np.ndarray, steps: list[_Step], start: list[tuple[float, float]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the step list: (T, 2, 3) foot ground points (x, lift, depth), (T, 2) contact, and
    (T, 2) the pelvis floor point (x, depth): the mean of the feet without kick excursions."""
    T = len(beats)
    feet = np.zeros((T, 2, 3))
    base = np.zeros((T, 2, 2))
    contact = np.ones((T, 2), dtype=bool)
    for f in range(2):
        feet[:, f, 0], feet[:, f, 2] = start[f]
        base[:, f] = start[f]
    for st in steps:  # in time order per foot
        f = st.foot
        after = beats >= st.b1
        feet[after, f, 0], feet[after, f, 2] = st.p1
        feet[after, f, 1] = 0.0
        base[after, f] = st.p1
        fly = (beats > st.b0) & (beats < st.b1)
        if not fly.any():
            continue
        s = (beats[fly] - st.b0) / (st.b1 - st.b0)
        e = _ease(s)
        bump = np.sin(np.pi * s)
        base[fly, f, 0] = st.p0[0] + (st.p1[0] - st.p0[0]) * e
        base[fly, f, 1] = st.p0[1] + (st.p1[1] - st.p0[1]) * e
        feet[fly, f, 0] = base[fly, f, 0] + st.out[0] * bump
        feet[fly, f, 2] = base[fly, f, 1] + st.out[1] * bump
        feet[fly, f, 1] = st.lift * bump
        contact[fly, f] = False
    return feet, contact, base.mean(axis=1)


def make_dance(seed: int, seconds: float, fps: float, *, bpm: float | None = None, varied: bool = False) -> Dance:
    """A seeded dance of `seconds` at `fps` (tempo `bpm`, default drawn from 90-128 by the seed).

    varied: a range-of-motion routine, as a target video should be: arm moves change every
    4 beats instead of 8 and cycle through a seeded order of all of them (20 s at 100 bpm
    shows every arm move), leg moves cycle likewise after the warm-up; otherwise moves are
    drawn independently and may repeat.
    """
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be positive, got {seconds}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")
    rng = np.random.default_rng([check_seed(seed), 0xDA4CE])
    bpm_v = float(rng.uniform(90.0, 128.0)) if bpm is None else float(bpm)
    if not 30.0 <= bpm_v <= 240.0:
        raise ValueError(f"bpm must be in 30..240, got {bpm_v}")
    n = max(1, int(round(seconds * fps)))
    t = np.arange(n, dtype=np.float64) / float(fps)
    beats = t * bpm_v / 60.0
    n_keys = int(math.ceil(beats[-1])) + 2
    n_seg = int(math.ceil(max(n_keys - 1, 1) / 8.0))

    keys = np.zeros((1 + 8 * n_seg + 1, len(CHANNELS)))
    rest = dict(zip(ARM_KEYS, _REST))
    for side in ("r", "l"):
        for kname, v in rest.items():
            keys[:, _CH[f"{side}_{kname}"]] = v
    planner = _StepPlanner(rng)
    start_feet = list(planner.pos)
    moves: list[tuple[str, str]] = []
    yaw_target = 0.0
    if varied:  # seeded orders of all moves; a generator of its own, so `rng` draws as for a plain dance
        order = np.random.default_rng([check_seed(seed), 0x5A11E])
        arm_cycle = [ARM_MOVES[i] for i in order.permutation(len(ARM_MOVES))]
        leg_cycle = [LEG_MOVES[i] for i in order.permutation(len(LEG_MOVES)) if LEG_MOVES[i] not in ("bounce", "travel")]
        leg_cycle += ["bounce", "travel"]
    for seg in range(n_seg):
        arm = ARM_MOVES[int(rng.integers(len(ARM_MOVES)))]
        # warm up in place, then travel (in depth too); later moves drawn at random, travel more often
        if seg < 2:
            leg = ("bounce", "travel")[seg]
        else:
            leg = LEG_MOVES[int(rng.choice(len(LEG_MOVES), p=_LEG_P))]
        if varied:  # the same draws are made either way, so the rest of the dance is the seed's
            leg = leg if seg < 2 else leg_cycle[(seg - 2) % len(leg_cycle)]
            pair = (arm_cycle[(2 * seg) % len(arm_cycle)], arm_cycle[(2 * seg + 1) % len(arm_cycle)])
            arm = "+".join(pair)
        moves.append((arm, leg))
        yaw_prev, yaw_target = yaw_target, float(rng.uniform(-0.45, 0.45))
        sing = rng.random() < 0.5
        if varied:  # two arm moves per 8 beats
            arm_keys = _arm_move(pair[0], rng)[:4] + _arm_move(pair[1], rng)[:4]
        else:
            arm_keys = _arm_move(arm, rng)
        for k, (ra, la, extra) in enumerate(arm_keys):
            row = keys[1 + 8 * seg + k]
            for i, kname in enumerate(ARM_KEYS):
                row[_CH[f"r_{kname}"]] = ra[i]
                row[_CH[f"l_{kname}"]] = la[i]
            row[_CH["yaw"]] = yaw_prev + (yaw_target - yaw_prev) * min(1.0, k / 4.0)
            row[_CH["head_pitch"]] = 0.06 if k % 2 == 0 else -0.02
            row[_CH["mouth"]] = float(rng.uniform(0.0, 0.7)) if sing else 0.05
            row[_CH["smile"]] = float(rng.uniform(0.0, 1.0))
            row[_CH["crouch"]] = 0.025 if k % 2 == 0 else 0.0
            for cname, v in extra.items():
                row[_CH[cname]] = row[_CH[cname]] + v if cname in ("yaw", "head_pitch") else v
        planner.plan(leg, 1 + 8 * seg)
    for b, c in planner.crouch_keys.items():
        if b < len(keys):
            keys[b, _CH["crouch"]] = c
    keys[0, :] = 0.0  # beat 0: relaxed rest pose, standing
    for side in ("r", "l"):
        for kname, v in rest.items():
            keys[0, _CH[f"{side}_{kname}"]] = v
    angles = _interp_keys(beats, keys)

    # blinks: ~every 2-5 s, 0.16 s long
    blink = np.zeros(n)
    tb = float(rng.uniform(0.5, 3.0))
    while tb < t[-1] + 1:
        blink = np.maximum(blink, np.clip(1.0 - np.abs(t - tb) / 0.08, 0.0, 1.0))
        tb += float(rng.uniform(2.0, 5.0))
    angles[:, _CH["blink"]] = blink

    steps = sorted(planner.steps, key=lambda s: s.b0)
    feet, contact, pelvis = _feet_track(beats, steps, start_feet)
    return Dance(
        seed=int(seed),
        fps=float(fps),
        bpm=bpm_v,
        timestamps=t,
        angles=angles.astype(np.float64),
        feet=feet,
        pelvis=pelvis,
        contact=contact,
        moves=tuple(moves),
    )
