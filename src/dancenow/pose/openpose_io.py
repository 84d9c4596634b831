"""OpenPose keypoint files <-> PoseSequence.

* Per-frame JSON as written by OpenPose's ``--write_json``: from a video,
  ``<stem>_<frame:012d>_keypoints.json``; from an image folder (``--image_dir``),
  ``<image name>_keypoints.json`` such as ``frame000001_keypoints.json``; holding ``{"version": 1.3, "people": [{
  "pose_keypoints_2d": [x, y, c, ...], "face_keypoints_2d": [...],
  "hand_left_keypoints_2d": [...], "hand_right_keypoints_2d": [...]}]}``.
  Export then import is exact (float32 values survive JSON text unchanged).
* The OpenCV FileStorage YAML of the Everybody Dance Now authors' data
  (``<frame>_pose.yml`` 23x3, ``<frame>_face.yml`` 70x3, ``<frame>_hand_left.yml`` /
  ``<frame>_hand_right.yml`` 21x3, ``!!opencv-nd-matrix`` or ``!!opencv-matrix``).

Only the first person of a frame is kept; a frame without people is all zero.
Body layouts read: BODY_25 (75 values), the authors' 23-point layout (69) and COCO-18 (54).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from dancenow.atomic import atomic_path
from dancenow.errors import InputError
from dancenow.pose.schema import BODY, FACE, LEFT_HAND, N_BODY, N_FACE, N_HAND, N_KEYPOINTS, RIGHT_HAND, PoseSequence

# The authors' 23-point body layout is BODY_25 without the heels, reordered. Their
# data-preparation code publishes the forward map (carolineec/EverybodyDanceNow,
# data_prep/renderopenpose.py, `map_25_to_23`, commit 1b6e4c40): body23[i] = body25[m[i]]
# with m = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 23, 12, 13, 14, 19, 20, 0, 15, 17, 16, 18],
# i.e. Neck, RShoulder, RElbow, RWrist, LShoulder, LElbow, LWrist, MidHip, RHip, RKnee,
# RAnkle, RBigToe, RSmallToe, LHip, LKnee, LAnkle, LBigToe, LSmallToe, Nose, REye, REar,
# LEye, LEar. Its renderer (`renderpose23`) draws limbs consistent with these names.
BODY25_OF_BODY23: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 23, 12, 13, 14, 19, 20, 0, 15, 17, 16, 18)
# COCO-18 (OpenPose's older COCO model): Nose, Neck, RShoulder, RElbow, RWrist, LShoulder,
# LElbow, LWrist, RHip, RKnee, RAnkle, LHip, LKnee, LAnkle, REye, LEye, REar, LEar.
BODY25_OF_COCO18: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
_MID_HIP, _R_HIP, _L_HIP = 8, 9, 12

_JSON_NAME = re.compile(r"^(?P<stem>.*)_(?P<index>\d{12})_keypoints\.json$")
_JSON_SUFFIX = "_keypoints.json"
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
_JSON_KEYS = (
    ("pose_keypoints_2d", "pose_keypoints"),
    ("face_keypoints_2d", "face_keypoints"),
    ("hand_left_keypoints_2d", "hand_left_keypoints"),
    ("hand_right_keypoints_2d", "hand_right_keypoints"),
)


def body23_to_body25(body23: np.ndarray) -> np.ndarray:
    """(23, 3) in the authors' layout -> (25, 3) BODY_25; the heels (21, 24) are missing."""
    b = np.asarray(body23, dtype=np.float32)
    if b.shape != (23, 3):
        raise ValueError(f"body23 must be (23, 3), got {b.shape}")
    out = np.zeros((N_BODY, 3), np.float32)
    out[list(BODY25_OF_BODY23)] = b
    return out


def coco18_to_body25(coco18: np.ndarray) -> np.ndarray:
    """(18, 3) COCO-18 -> (25, 3) BODY_25; MidHip = mid-hips when both exist, feet missing."""
    b = np.asarray(coco18, dtype=np.float32)
    if b.shape != (18, 3):
        raise ValueError(f"coco18 must be (18, 3), got {b.shape}")
    out = np.zeros((N_BODY, 3), np.float32)
    out[list(BODY25_OF_COCO18)] = b
    r, l = out[_R_HIP], out[_L_HIP]
    if r[2] > 0 and l[2] > 0:
        out[_MID_HIP, :2] = (r[:2] + l[:2]) / 2
        out[_MID_HIP, 2] = min(r[2], l[2])
    return out


def _body_to_25(flat: np.ndarray, path: Path) -> np.ndarray:
    n = flat.size // 3
    pts = flat.reshape(n, 3)
    if n == N_BODY:
        return pts
    if n == 23:
        return body23_to_body25(pts)
    if n == 18:
        return coco18_to_body25(pts)
    raise InputError(path, f"body has {n} points; expected 25 (BODY_25), 23 (Everybody Dance Now) or 18 (COCO)")


# ------------------------------------------------------------------ JSON
def _flat(points: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(points, np.float32).reshape(-1)]


def write_openpose_json(seq: PoseSequence, directory: str | Path, stem: str) -> list[Path]:
    """One OpenPose-style JSON file per frame, ``<stem>_<index:012d>_keypoints.json``.

    A frame with any point present becomes one person; an empty frame has ``"people": []``.
    Files are written atomically; returns their paths in frame order.
    """
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise InputError(d, "exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    if not np.isfinite(seq.keypoints).all():
        raise ValueError("keypoints hold non-finite values; OpenPose JSON cannot store them")
    paths = []
    for i, kp in enumerate(seq.keypoints):
        people: list[dict[str, Any]] = []
        if kp.any():
            people.append({
                "person_id": [-1],
                "pose_keypoints_2d": _flat(kp[BODY]),
                "face_keypoints_2d": _flat(kp[FACE]),
                "hand_left_keypoints_2d": _flat(kp[LEFT_HAND]),
                "hand_right_keypoints_2d": _flat(kp[RIGHT_HAND]),
                "pose_keypoints_3d": [], "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": [],
            })
        path = d / f"{stem}_{i:012d}_keypoints.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"version": 1.3, "people": people}), encoding="utf-8")
        paths.append(path)
    return paths


def _part(person: dict[str, Any], keys: tuple[str, str], n: int, path: Path) -> np.ndarray | None:
    values = person.get(keys[0], person.get(keys[1]))
    if values is None or (isinstance(values, list) and not values):
        return None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(path, f'"{keys[0]}" is not a list of numbers')
    arr = np.asarray(values, dtype=np.float32)
    if n and arr.size != 3 * n:
        raise InputError(path, f'"{keys[0]}" has {arr.size} values, expected {3 * n}')
    if not n and arr.size % 3:
        raise InputError(path, f'"{keys[0]}" has {arr.size} values, not a multiple of 3')
    if not np.isfinite(arr).all():
        raise InputError(path, f'"{keys[0]}" holds non-finite values')
    return arr


def read_openpose_json_frame(path: str | Path) -> np.ndarray:
    """One OpenPose JSON file -> (137, 3) float32 (first person; zeros without people)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable OpenPose JSON file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise InputError(path, 'not an OpenPose keypoints file (no "people" list)')
    out = np.zeros((N_KEYPOINTS, 3), np.float32)
    if not doc["people"]:
        return out
    person = doc["people"][0]
    if not isinstance(person, dict):
        raise InputError(path, "a person entry is not an object")
    body = _part(person, _JSON_KEYS[0], 0, path)
    if body is not None:
        out[BODY] = _body_to_25(body, path)
    for sl, keys, n in ((FACE, _JSON_KEYS[1], N_FACE), (LEFT_HAND, _JSON_KEYS[2], N_HAND),
                        (RIGHT_HAND, _JSON_KEYS[3], N_HAND)):
        part = _part(person, keys, n, path)
        if part is not None:
            out[sl] = part.reshape(n, 3)
    return out


def _json_files(d: Path) -> dict[str, tuple[str, dict[int, Path]]]:
    """{stem: (naming, {number: file})} of the OpenPose JSON files in `d`.

    ``<stem>_<12 digits>_keypoints.json`` (OpenPose on a video) is naming "video"; any
    other ``<image>_keypoints.json`` (OpenPose on an image folder) is naming "images",
    numbered by the last run of digits in the image name, its stem being the name
    without that number. InputError naming `d` when an image name has no number or two
    files of one stem share a number.
    """
    found: dict[str, tuple[str, dict[int, Path]]] = {}
    for p in sorted(d.iterdir()):
        if not p.name.endswith(_JSON_SUFFIX) or not p.is_file():
            continue
        m = _JSON_NAME.match(p.name)
        if m:
            naming, stem, number = "video", m["stem"], int(m["index"])
        else:
            image = p.name[: -len(_JSON_SUFFIX)]
            n = _LAST_NUMBER.search(image)
            if n is None:
                raise InputError(d, f"{p.name}: no frame number in the image name, so the frame order is unknown")
            naming, stem, number = "images", image[: n.start()] + image[n.end():], int(n[1])
        kind, files = found.setdefault(stem, (naming, {}))
        if kind != naming:
            raise InputError(d, f"{p.name}: mixes OpenPose video and image-folder file names for {stem!r}")
        if number in files:
            raise InputError(d, f"{files[number].name} and {p.name} have the same frame number {number}")
        files[number] = p
    return found


def read_openpose_json(
    directory: str | Path, width: int, height: int, fps: float, *, stem: str | None = None
) -> PoseSequence:
    """A folder of OpenPose JSON files -> PoseSequence.

    Files from a video (``<stem>_<i:012d>_keypoints.json``): frame i is the file numbered
    i; numbers missing between 0 and the last file give all-zero frames (counted in meta
    "missing_files"). Files from an image folder (``<image>_keypoints.json``, e.g.
    ``frame2_keypoints.json``, ``frame10_keypoints.json``): one frame per file, in the
    order of the last number in the image name. `stem` picks one video when the folder
    holds several (for image names, the name without its number, e.g. "frame").
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(d, "OpenPose JSON folder not found")
    found = _json_files(d)
    if stem is not None:
        found = {stem: found[stem]} if stem in found else {}
    if not found:
        which = f"{stem}_" if stem is not None else ""
        raise InputError(
            d, f"no OpenPose files named {which}<000000000000>_keypoints.json or <image>_keypoints.json"
        )
    if len(found) > 1:
        raise InputError(d, f"holds keypoints of several videos ({', '.join(sorted(found))}); pass stem=")
    (name, (naming, files)), = found.items()
    if naming == "images":
        files = dict(enumerate(files[k] for k in sorted(files)))
    n = max(files) + 1
    kp = np.zeros((n, N_KEYPOINTS, 3), np.float32)
    for i, p in files.items():
        kp[i] = read_openpose_json_frame(p)
    meta = {"source": str(d), "format": "openpose-json", "stem": name, "naming": naming,
            "missing_files": n - len(files)}
    return PoseSequence(keypoints=kp, width=int(width), height=int(height), fps=float(fps), meta=meta)


# ------------------------------------------------------------------ OpenCV YAML
_YAML_SIZES = re.compile(r"sizes:\s*\[([^\]]*)\]")
_YAML_ROWS = re.compile(r"rows:\s*(\d+)")
_YAML_COLS = re.compile(r"cols:\s*(\d+)")
_YAML_DT = re.compile(r"dt:\s*([A-Za-z0-9]+)")
_YAML_DATA = re.compile(r"data:\s*\[([^\]]*)\]", re.S)


def read_opencv_yaml_matrix(path: str | Path) -> np.ndarray | None:
    """The first matrix of an OpenCV FileStorage YAML file -> float32 array, or None when
    the file holds no matrix (OpenPose writes such files for frames without people).

    ``!!opencv-nd-matrix`` keeps its ``sizes``; ``!!opencv-matrix`` gives (rows, cols).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read OpenCV YAML ({type(exc).__name__})") from None
    if not text.lstrip().startswith("%YAML"):
        raise InputError(path, 'not an OpenCV YAML file (no "%YAML" header)')
    start = text.find("!!opencv-")
    if start < 0:
        return None
    body = text[start:]
    nxt = body.find("!!opencv-", 1)
    body = body if nxt < 0 else body[:nxt]
    if body.startswith("!!opencv-nd-matrix"):
        m = _YAML_SIZES.search(body)
        shape = tuple(int(v) for v in m[1].replace(",", " ").split()) if m else None
    elif body.startswith("!!opencv-matrix"):
        r, c = _YAML_ROWS.search(body), _YAML_COLS.search(body)
        shape = (int(r[1]), int(c[1])) if r and c else None
    else:
        raise InputError(path, "unknown OpenCV YAML type (expected !!opencv-matrix or !!opencv-nd-matrix)")
    dt = _YAML_DT.search(body)
    data = _YAML_DATA.search(body)
    if shape is None or dt is None or data is None:
        raise InputError(path, "malformed OpenCV matrix (missing sizes/rows/cols, dt or data)")
    if dt[1] not in ("f", "d", "i", "u", "s", "w", "c"):
        raise InputError(path, f"unsupported OpenCV matrix element type {dt[1]!r}")
    try:
        values = [float(v) for v in data[1].replace("\n", " ").split(",") if v.strip()]
    except ValueError:
        raise InputError(path, "malformed OpenCV matrix data (not numbers)") from None
    if len(values) != math.prod(shape):
        raise InputError(path, f"OpenCV matrix has {len(values)} values, sizes {list(shape)} need {math.prod(shape)}")
    arr = np.asarray(values, dtype=np.float32).reshape(shape)
    if not np.isfinite(arr).all():
        raise InputError(path, "OpenCV matrix holds non-finite values")
    return arr


def _yaml_part(path: Path, n_points: tuple[int, ...]) -> np.ndarray | None:
    """-> (n, 3) of the first person, or None when the file is absent or empty."""
    if not path.exists():
        return None
    m = read_opencv_yaml_matrix(path)
    if m is None or m.size == 0:
        return None
    if m.ndim == 3:  # (people, points, 3)
        m = m[0]
    if m.ndim != 2 or m.shape[1] != 3 or m.shape[0] not in n_points:
        raise InputError(path, f"keypoint matrix has shape {list(m.shape)}, expected ({'/'.join(map(str, n_points))}, 3)")
    return m


def read_openpose_yaml_frame(keypoints_dir: str | Path, frame: str) -> np.ndarray:
    """``<frame>_pose.yml`` (+ ``_face``, ``_hand_left``, ``_hand_right``) -> (137, 3) float32.

    The pose file must exist; absent face/hand files leave those parts missing.
    """
    d = Path(keypoints_dir)
    pose_path = d / f"{frame}_pose.yml"
    if not pose_path.is_file():
        raise InputError(pose_path, "OpenPose pose file not found")
    out = np.zeros((N_KEYPOINTS, 3), np.float32)
    body = _yaml_part(pose_path, (N_BODY, 23, 18))
    if body is not None:
        out[BODY] = _body_to_25(body.reshape(-1), pose_path)
    for sl, suffix, n in ((FACE, "face", N_FACE), (LEFT_HAND, "hand_left", N_HAND), (RIGHT_HAND, "hand_right", N_HAND)):
        part = _yaml_part(d / f"{frame}_{suffix}.yml", (n,))
        if part is not None:
            out[sl] = part
    return out


def read_openpose_yaml(keypoints_dir: str | Path, width: int, height: int, fps: float) -> PoseSequence:
    """All ``*_pose.yml`` frames of a folder, in name order -> PoseSequence."""
    d = Path(keypoints_dir)
    if not d.is_dir():
        raise InputError(d, "OpenPose YAML folder not found")
    frames = sorted(p.name[: -len("_pose.yml")] for p in d.glob("*_pose.yml"))
    if not frames:
        raise InputError(d, "no *_pose.yml files")
    kp = np.stack([read_openpose_yaml_frame(d, f) for f in frames])
    meta = {"source": str(d), "format": "openpose-yaml", "frames": frames}
    return PoseSequence(keypoints=kp, width=int(width), height=int(height), fps=float(fps), meta=meta)
