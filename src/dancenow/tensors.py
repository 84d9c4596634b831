"""Images <-> tensors and crops of face boxes: the helpers shared by data, models, training and transfer.

Images are (H, W, 3) uint8 RGB arrays; tensors are float in [-1, 1], (3, H, W) or (B, 3, H, W).
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def crop_faces(boxes: torch.Tensor, *images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Crop the same face box out of each image batch; samples without a face are dropped.

    boxes: (B, 4) x0, y0, x1, y1 (-1: none). Returns (kept indices (K,), [crops (K, C, s, s)]).
    """
    keep = torch.nonzero(boxes[:, 0] >= 0).flatten()
    crops: list[torch.Tensor] = []
    for img in images:
        parts = [img[i, :, int(boxes[i, 1]) : int(boxes[i, 3]), int(boxes[i, 0]) : int(boxes[i, 2])] for i in keep.tolist()]
        crops.append(torch.stack(parts) if parts else img[:0])
    return keep, crops


def feather_mask(side: int, width: int) -> torch.Tensor:
    """(side, side) float weights: 1 inside, falling linearly to 0 over `width` pixels at the edges."""
    d = torch.arange(side, dtype=torch.float32)
    d = torch.minimum(d, side - 1 - d)
    ramp = ((d + 0.5) / max(1, width)).clamp(0, 1)
    return torch.minimum(ramp[:, None], ramp[None, :])


def paste_faces(image: torch.Tensor, boxes: torch.Tensor, keep: torch.Tensor, faces: torch.Tensor,
                feather: int = 0) -> torch.Tensor:
    """A copy of `image` (B, C, H, W) with faces[j] (clamped to [-1, 1]) written at boxes[keep[j]];
    feather > 0 blends them in over that many pixels at the box's edges instead of a hard seam."""
    out = image.clone()
    for j, i in enumerate(keep.tolist()):
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        face = faces[j].clamp(-1, 1).to(out.dtype)
        if feather > 0:
            m = feather_mask(y1 - y0, feather).to(out.device, out.dtype)
            face = m * face + (1 - m) * out[i, :, y0:y1, x0:x1]
        out[i, :, y0:y1, x0:x1] = face
    return out


def face_box_tensor(box: np.ndarray | None) -> torch.Tensor:
    """One frame's face box (4,) int (or None / -1 row: no face) -> (1, 4) int64 for `crop_faces`."""
    if box is None:
        return torch.full((1, 4), -1, dtype=torch.int64)
    return torch.from_numpy(np.asarray(box, dtype=np.int64).reshape(1, 4))
