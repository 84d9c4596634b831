"""Drawing a subject from keypoints (137 x (x, y, conf), the PoseSequence schema) with OpenCV.

Everything is derived from the 2D keypoints and the subject's looks, so any subject can be
drawn on any skeleton, including a detected one: a part whose points are missing (confidence 0)
is skipped or drawn from what is there (a head without face points, a hand without finger points).
Shapes are anti-aliased filled polygons with sub-pixel coordinates; the person mask gets the same
polygons without anti-aliasing. Parts are drawn back to front: shadow, hair behind the head,
the far arm (when the face shows the body is turned), legs, hips, torso, neck, head, near arms.
"""

from __future__ import annotations

import cv2
import numpy as np

from dancenow.pose.schema import B, N_BODY, N_FACE, N_HAND
from dancenow.synthetic.subject import RGB, Subject

_SHIFT = 4
_ONE = float(1 << _SHIFT)
_LIGHT = np.array([-0.55, -0.83])  # image direction toward the light (upper left)
_HALF_COS, _HALF_SIN = np.cos(np.linspace(0.0, np.pi, 9)), np.sin(np.linspace(0.0, np.pi, 9))
_STRIPES = np.array([[t, t + 0.07] for t in np.linspace(0.22, 0.74, 4)]).ravel()
_F0 = N_BODY
_LH0 = N_BODY + N_FACE
_RH0 = _LH0 + N_HAND


def _fx(pts: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int32 fixed point for cv2 (shift=_SHIFT)."""
    return np.rint(np.multiply(pts, _ONE)).astype(np.int32)


def shade(c: RGB, f: float) -> RGB:
    """Colour scaled by f (f > 1 mixes toward white)."""
    if f <= 1.0:
        return (int(c[0] * f), int(c[1] * f), int(c[2] * f))
    t = min(f - 1.0, 1.0)
    return (int(c[0] + (255 - c[0]) * t), int(c[1] + (255 - c[1]) * t), int(c[2] + (255 - c[2]) * t))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-9 else np.array([0.0, -1.0])


def _perp(v: np.ndarray) -> np.ndarray:
    return np.array([-v[1], v[0]])


# per point count n: unit half circles of both capsule ends (complex) and which end each point belongs to
_ARCS: dict[int, tuple[np.ndarray, np.ndarray]] = {
    n: (np.concatenate([np.exp(1j * np.linspace(-np.pi / 2, np.pi / 2, n)),
                        np.exp(1j * np.linspace(np.pi / 2, 3 * np.pi / 2, n))]),
        np.arange(2 * n) < n)
    for n in range(3, 17)
}
_CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 28, endpoint=False))


def capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """(N, 2) outline of a tapered capsule from p0 (radius r0) to p1 (radius r1)."""
    z0, z1 = complex(p0[0], p0[1]), complex(p1[0], p1[1])
    d = z1 - z0
    L = abs(d)
    e = d / L if L > 1e-9 else 1j
    arc, end1 = _ARCS[int(min(16, max(4, 3 + max(r0, r1) * 0.7)))]
    z = np.where(end1, z1, z0) + np.where(end1, r1 * e, r0 * e) * arc
    return z.view(np.float64).reshape(-1, 2)


def ellipse(c: np.ndarray, ax_u: np.ndarray, ax_v: np.ndarray, n: int = 28) -> np.ndarray:
    """(n, 2) ellipse with centre c and semi-axis vectors ax_u, ax_v."""
    z = _CIRCLE if n == 28 else _circle(n)
    w = complex(c[0], c[1]) + z.real * complex(ax_u[0], ax_u[1]) + z.imag * complex(ax_v[0], ax_v[1])
    return w.view(np.float64).reshape(-1, 2)


_CIRCLES = {n: np.exp(1j * np.linspace(0, 2 * np.pi, n, endpoint=False)) for n in (12, 14, 16, 20)}


def _circle(n: int) -> np.ndarray:
    z = _CIRCLES.get(n)
    return z if z is not None else np.exp(1j * np.linspace(0, 2 * np.pi, n, endpoint=False))


class Painter:
    """Draws filled shapes into an RGB image and the person mask."""

    def __init__(self, img: np.ndarray, mask: np.ndarray):
        self.img = img
        self.mask = mask

    def fill(self, polys: list[np.ndarray], color: RGB, outline: RGB | None = None, in_mask: bool = True) -> None:
        pts = [_fx(p) for p in polys]
        cv2.fillPoly(self.img, pts, color, cv2.LINE_AA, _SHIFT)
        if outline is not None:
            cv2.polylines(self.img, pts, True, outline, 1, cv2.LINE_AA, _SHIFT)
        if in_mask:
            cv2.fillPoly(self.mask, pts, 255, cv2.LINE_8, _SHIFT)

    def lines(self, polylines: list[np.ndarray], color: RGB, thickness: float, closed: bool = False,
              in_mask: bool = False) -> None:
        th = max(1, int(round(thickness)))
        pts = [_fx(p) for p in polylines]
        cv2.polylines(self.img, pts, closed, color, th, cv2.LINE_AA, _SHIFT)
        if in_mask:
            cv2.polylines(self.mask, pts, closed, 255, th, cv2.LINE_8, _SHIFT)

    def circle(self, c: np.ndarray, r: float, color: RGB, in_mask: bool = False) -> None:
        cc = _fx(c)
        rr = int(round(max(r, 0.5) * _ONE))
        cv2.circle(self.img, (int(cc[0]), int(cc[1])), rr, color, -1, cv2.LINE_AA, _SHIFT)
        if in_mask:
            cv2.circle(self.mask, (int(cc[0]), int(cc[1])), rr, 255, -1, cv2.LINE_8, _SHIFT)

    def limb(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, color: RGB, outline: bool = True) -> None:
        """A shaded capsule: base colour, dark rim, a highlight on the lit side."""
        poly = capsule(p0, p1, r0, r1)
        self.fill([poly], color, shade(color, 0.62) if outline else None)
        d = p1 - p0
        if np.hypot(d[0], d[1]) > 1e-6 and min(r0, r1) > 1.2:
            n = _perp(_unit(d))
            if n @ _LIGHT < 0:
                n = -n
            self.fill([capsule(p0 + n * 0.38 * r0, p1 + n * 0.38 * r1, 0.38 * r0, 0.38 * r1)],
                      shade(color, 1.16), in_mask=False)


class PersonDrawer:
    """Draws one subject from keypoints. Stateless apart from the subject's looks."""

    def __init__(self, subject: Subject):
        self.s = subject
        self._hair = _hair_templates(subject.hair_style)

    # ------------------------------------------------------------ scale
    def _ppm(self, P: np.ndarray, ok: np.ndarray) -> float | None:
        """Pixels per metre near the body, from segment lengths (foreshortening only shortens them)."""
        s = self.s

        def ratio(a: int, b: int, length: float) -> float | None:
            if ok[a] and ok[b]:
                return float(np.hypot(*(P[a] - P[b]))) / length
            return None

        main = [r for r in (ratio(B["Neck"], B["MidHip"], s.torso),
                            ratio(B["RShoulder"], B["LShoulder"], 2 * s.shoulder_half)) if r]
        if main:
            return max(main)
        others = [r for r in (
            ratio(B["RHip"], B["RKnee"], s.thigh), ratio(B["LHip"], B["LKnee"], s.thigh),
            ratio(B["RKnee"], B["RAnkle"], s.shin), ratio(B["LKnee"], B["LAnkle"], s.shin),
            ratio(B["RShoulder"], B["RElbow"], s.upper_arm), ratio(B["LShoulder"], B["LElbow"], s.upper_arm),
            ratio(B["RHip"], B["LHip"], 2 * s.hip_half)) if r]
        if others:
            return 1.1 * float(np.median(others))
        return None

    # ------------------------------------------------------------ entry point
    def draw(self, img: np.ndarray, mask: np.ndarray, kp: np.ndarray) -> None:
        """Draw the person of keypoints kp (137, 3) into img (H, W, 3) uint8 and mask (H, W) uint8."""
        P = kp[:, :2].astype(np.float64)
        ok = (kp[:, 2] > 0) & np.isfinite(P).all(axis=1)
        if not ok[:N_BODY].any() and not ok.any():
            return
        s = self.s
        ppm = self._ppm(P, ok)
        head = self._head_geometry(P, ok, ppm)
        if ppm is None:
            if head is None:
                return
            ppm = head[3] / s.head
        pa = Painter(img, mask)
        g = s.girth
        self._shadow(img, P, ok, ppm)
        if head is not None and s.hair_style in ("long", "ponytail"):
            self._hair_back(pa, head)
        sides = ("R", "L")
        far_leg = self._far_side(P, ok)
        torso = self._torso_frame(P, ok, ppm * g)
        far = far_leg
        # a far arm passes behind the torso unless its hand is in front of the body (clap, guard, hand on hip)
        if far is not None and torso is not None and ok[B[f"{far}Wrist"]]:
            hull = self._torso_outline(torso, ppm * g).astype(np.float32)
            wrist = P[B[f"{far}Wrist"]]
            if cv2.pointPolygonTest(hull, (float(wrist[0]), float(wrist[1])), True) > -0.03 * ppm:
                far = None
        if far is not None:
            self._arm(pa, P, ok, far, ppm * g)
        for side in ((far_leg,) + tuple(x for x in sides if x != far_leg)) if far_leg else sides:
            self._leg(pa, P, ok, side, ppm * g)
        if torso is not None:
            self._hips(pa, P, ok, torso, ppm * g)
        if head is not None:
            self._neck(pa, P, ok, head, ppm * g)
        if torso is not None:
            self._torso(pa, torso, ppm * g)
        if head is not None:
            self._head(pa, P, ok, head)
        for side in sides:
            if side != far:
                self._arm(pa, P, ok, side, ppm * g)

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _far_side(P: np.ndarray, ok: np.ndarray) -> str | None:
        """'L'/'R' when the face shows the body turned far enough for that arm to pass behind the torso."""
        if not (ok[B["Nose"]] and ok[B["RShoulder"]] and ok[B["LShoulder"]]):
            return None
        for a, b in ((B["REar"], B["LEar"]), (B["REye"], B["LEye"])):
            if ok[a] and ok[b]:
                span = float(np.hypot(*(P[b] - P[a])))
                if span < 1e-6:
                    return None
                axis = _unit(P[B["LShoulder"]] - P[B["RShoulder"]])
                rel = float((P[B["Nose"]] - (P[a] + P[b]) / 2) @ axis) / span
                if rel > 0.14:
                    return "L"
                if rel < -0.14:
                    return "R"
                return None
        return None

    def _shadow(self, img: np.ndarray, P: np.ndarray, ok: np.ndarray, ppm: float) -> None:
        """Soft contact shadows on the floor under each foot (fainter for a raised foot)."""
        soles = []
        for pts in ((B["RHeel"], B["RBigToe"], B["RSmallToe"], B["RAnkle"]),
                    (B["LHeel"], B["LBigToe"], B["LSmallToe"], B["LAnkle"])):
            idx = [i for i in pts if ok[i]]
            if not idx:
                continue
            q = P[idx]
            sole_y = float(q[:, 1].max()) + (0.0 if len(idx) > 1 or not ok[pts[3]] else 0.06 * ppm)
            soles.append((float(q[:, 0].mean()), sole_y))
        if not soles:
            return
        h, w = img.shape[:2]
        rx = 0.17 * ppm
        ry = max(0.05 * ppm, 1.0)
        low = max(y for _, y in soles)
        blur = max(0.7, 0.5 * ry)
        pad = int(3 * blur + rx + 2)
        xs = [x for x, _ in soles]
        ys = [y for _, y in soles]
        x0, x1 = int(max(0, min(xs) - pad)), int(min(w, max(xs) + pad + 1))
        y0, y1 = int(max(0, min(ys) - pad)), int(min(h, max(ys) + pad + 1))
        if x1 <= x0 or y1 <= y0:
            return
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        for x, y in soles:
            fade = float(np.clip(1.0 - (low - y) / (0.25 * ppm), 0.25, 1.0))
            c = _fx(np.array([x - x0, y - y0 + 0.3 * ry]))
            cv2.ellipse(alpha, (int(c[0]), int(c[1])), (int(rx * _ONE), int(ry * _ONE)), 0, 0, 360,
                        0.5 * fade, -1, cv2.LINE_AA, _SHIFT)
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur)
        roi = img[y0:y1, x0:x1]
        roi[:] = (roi * (1.0 - alpha[..., None])).astype(np.uint8)

    # ------------------------------------------------------------ arms and hands
    def _arm(self, pa: Painter, P: np.ndarray, ok: np.ndarray, side: str, pg: float) -> None:
        s = self.s
        S, E, W = B[f"{side}Shoulder"], B[f"{side}Elbow"], B[f"{side}Wrist"]
        skin = s.skin
        sleeve = s.top if s.top_style != "tank" else None
        long_sleeve = s.top_style == "longsleeve"
        r_s, r_e, r_w = 0.046 * pg, 0.038 * pg, 0.028 * pg
        if ok[S] and ok[E]:
            pa.limb(P[S], P[E], r_s, r_e, s.top if long_sleeve else skin)
            if sleeve is not None and not long_sleeve:
                mid = P[S] + (P[E] - P[S]) * 0.5
                pa.limb(P[S], mid, r_s * 1.1, r_e * 1.2, sleeve)
        if ok[E] and ok[W]:
            if long_sleeve:
                cuff = P[E] + (P[W] - P[E]) * 0.88
                pa.limb(P[E], cuff, r_e, r_w * 1.15, s.top)
                pa.limb(cuff, P[W], r_w * 1.05, r_w, skin)
            else:
                pa.limb(P[E], P[W], r_e, r_w, skin)
        if ok[W]:
            self._hand(pa, P, ok, side, pg)

    def _hand(self, pa: Painter, P: np.ndarray, ok: np.ndarray, side: str, pg: float) -> None:
        s = self.s
        h0 = _RH0 if side == "R" else _LH0
        hok = ok[h0:h0 + N_HAND]
        H = P[h0:h0 + N_HAND]
        skin = s.skin
        dark = shade(skin, 0.62)
        if hok.sum() >= 3:  # whatever finger points there are: palm hull, finger chains, lone points
            palm_idx = [i for i in (0, 1, 5, 9, 13, 17) if hok[i]]
            fw = 0.0105 * pg  # half a finger width
            if len(palm_idx) >= 3:
                hull = cv2.convexHull(H[palm_idx].astype(np.float32)).reshape(-1, 2).astype(np.float64)
                pa.fill([hull], skin, dark)
            fingers, dots = [], []
            for chain in ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)):
                pts = [H[i] for i in chain if hok[i]]
                if len(pts) >= 2:
                    fingers.append(np.array(pts))
                elif pts:
                    dots.append(pts[0])
            if fingers:
                pa.lines(fingers, dark, 2 * fw + 1.0, in_mask=True)
                pa.lines(fingers, skin, 2 * fw, in_mask=True)
            for p in dots + ([H[0]] if hok[0] and len(palm_idx) < 3 else []):
                pa.circle(p, fw * 1.2, skin, in_mask=True)
            return
        # no finger points: a mitten along the forearm
        W = P[B[f"{side}Wrist"]]
        E = B[f"{side}Elbow"]
        d = _unit(W - P[E]) if ok[E] else np.array([0.0, 1.0])
        L = s.hand * pg / s.girth
        pa.fill([ellipse(W + d * 0.45 * L, d * 0.55 * L, _perp(d) * 0.05 * pg)], skin, dark)

    # ------------------------------------------------------------ legs
    def _leg(self, pa: Painter, P: np.ndarray, ok: np.ndarray, side: str, pg: float) -> None:
        s = self.s
        Hh, K, A = B[f"{side}Hip"], B[f"{side}Knee"], B[f"{side}Ankle"]
        trousers = s.bottom_style == "trousers"
        r_h, r_k, r_a = 0.082 * pg, 0.055 * pg, 0.037 * pg
        skin = s.skin
        if ok[Hh] and ok[K]:
            pa.limb(P[Hh], P[K], r_h, r_k, s.bottom if trousers else skin)
            if s.bottom_style == "shorts":
                hem = P[Hh] + (P[K] - P[Hh]) * 0.55
                pa.limb(P[Hh], hem, r_h * 1.08, (r_h * 0.45 + r_k * 0.55) * 1.12, s.bottom)
        if ok[K] and ok[A]:
            pa.limb(P[K], P[A], r_k, r_a, s.bottom if trousers else skin)
        self._foot(pa, P, ok, side, pg)

    def _foot(self, pa: Painter, P: np.ndarray, ok: np.ndarray, side: str, pg: float) -> None:
        s = self.s
        A, heel, big, small = B[f"{side}Ankle"], B[f"{side}Heel"], B[f"{side}BigToe"], B[f"{side}SmallToe"]
        pts = [P[i] for i in (heel, big, small) if ok[i]]
        r = 0.04 * pg
        dark = shade(s.shoes, 0.55)
        if ok[A] and pts:
            toe = np.mean([P[i] for i in (big, small) if ok[i]], axis=0) if (ok[big] or ok[small]) else P[A]
            d = _unit(toe - P[A]) if np.hypot(*(toe - P[A])) > 1e-6 else np.array([0.0, 1.0])
            q = np.array(pts + [P[A] + _perp(d) * r, P[A] - _perp(d) * r, P[A] - d * r * 0.6])
            hull = cv2.convexHull(q.astype(np.float32)).reshape(-1, 2).astype(np.float64)
            pa.fill([hull], s.shoes, dark)
            if ok[big] or ok[small]:  # rounded toe cap with a light stripe
                pa.fill([ellipse(toe, d * r * 0.8, _perp(d) * r * 0.9, 14)], shade(s.shoes, 0.9), dark)
                pa.lines([np.array([P[A] - _perp(d) * r * 0.6, P[A] + _perp(d) * r * 0.6])],
                         shade(s.shoes, 1.4), max(1.0, 0.012 * pg))
        elif ok[A]:
            pa.fill([ellipse(P[A] + np.array([0.0, 0.6 * r]), np.array([1.6 * r, 0.0]), np.array([0.0, 0.9 * r]))],
                    s.shoes, dark)

    # ------------------------------------------------------------ torso
    def _torso_frame(self, P: np.ndarray, ok: np.ndarray, pg: float) -> dict | None:
        """Key points of the torso outline, or None without a neck and hips."""
        N, M, RS, LS, RH, LH = (B[n] for n in ("Neck", "MidHip", "RShoulder", "LShoulder", "RHip", "LHip"))
        if not ok[N]:
            return None
        if ok[M]:
            mid = P[M]
        elif ok[RH] and ok[LH]:
            mid = (P[RH] + P[LH]) / 2
        else:
            return None
        up = _unit(P[N] - mid)
        if ok[RS] and ok[LS] and np.hypot(*(P[LS] - P[RS])) > 1e-6:
            v = _unit(P[LS] - P[RS])
        elif ok[RH] and ok[LH] and np.hypot(*(P[LH] - P[RH])) > 1e-6:
            v = _unit(P[LH] - P[RH])
        else:
            v = -_perp(up)
        s = self.s
        ls = P[LS] if ok[LS] else P[N] + v * s.shoulder_half * pg / s.girth
        rs = P[RS] if ok[RS] else P[N] - v * s.shoulder_half * pg / s.girth
        lh = P[LH] if ok[LH] else mid + v * s.hip_half * pg / s.girth
        rh = P[RH] if ok[RH] else mid - v * s.hip_half * pg / s.girth
        return {"neck": P[N], "mid": mid, "up": up, "v": v, "ls": ls, "rs": rs, "lh": lh, "rh": rh,
                "len": float(np.hypot(*(P[N] - mid)))}

    @staticmethod
    def _edges(t: np.ndarray, T: dict, pg: float) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) left and right torso side at heights t (0 hip joints .. 1 shoulders)."""
        v = T["v"]
        hip_out, sh_in = 0.075 * pg, 0.012 * pg
        lh, rh = T["lh"] + v * hip_out, T["rh"] - v * hip_out
        ls, rs = T["ls"] + v * sh_in, T["rs"] - v * sh_in
        t = np.asarray(t, np.float64)[:, None]
        pinch = (0.028 * pg * np.sin(np.pi * np.clip(t, 0, 1)) ** 2)
        left = lh + (ls - lh) * t - v * pinch
        right = rh + (rs - rh) * t + v * pinch
        return left, right

    def _torso_outline(self, T: dict, pg: float) -> np.ndarray:
        """(N, 2) shirt outline: neck, shoulder caps, sides down to the hem."""
        v, up = T["v"], T["up"]
        r_sh, r_neck = 0.052 * pg, 0.058 * pg
        t_bot = 0.14 if self.s.belt else -0.1  # a belt means a tucked-in shirt
        eL, eR = self._edges(np.array([t_bot, 0.2, 0.45, 0.7, 0.88]), T, pg)
        cap_l = T["ls"] + up * 0.75 * r_sh + v * 0.45 * r_sh
        cap_r = T["rs"] + up * 0.75 * r_sh - v * 0.45 * r_sh
        sh_l = T["ls"] + v * 0.8 * r_sh
        sh_r = T["rs"] - v * 0.8 * r_sh
        nk_l = T["neck"] + v * r_neck + up * 0.35 * r_neck
        nk_r = T["neck"] - v * r_neck + up * 0.35 * r_neck
        bottom_mid = (eL[0] + eR[0]) / 2 - up * 0.03 * T["len"]
        return np.vstack([nk_l, cap_l, sh_l, eL[::-1], bottom_mid[None], eR, sh_r, cap_r, nk_r])

    def _torso(self, pa: Painter, T: dict, pg: float) -> None:
        s = self.s
        v, up = T["v"], T["up"]
        r_sh = 0.052 * pg
        r_neck = 0.058 * pg
        t_bot = 0.14 if s.belt else -0.1
        eL, eR = self._edges(np.array([t_bot, 0.2, 0.45, 0.7, 0.88]), T, pg)
        bottom_mid = (eL[0] + eR[0]) / 2 - up * 0.03 * T["len"]
        outline = self._torso_outline(T, pg)
        top = s.top
        dark = shade(top, 0.62)
        if s.top_style == "tank":
            pa.fill([outline], s.skin, shade(s.skin, 0.62))
            scoop = T["neck"] - up * 0.16 * T["len"]
            strap_l = T["ls"] * 0.55 + T["neck"] * 0.45
            strap_r = T["rs"] * 0.55 + T["neck"] * 0.45
            w = 0.02 * pg
            # left strap, left side down, bottom, right side up, right strap, scoop neck
            tank = np.vstack([strap_l + v * w + up * 0.3 * r_sh, eL[3] + (eL[4] - eL[3]) * 0.4, eL[2::-1],
                              bottom_mid[None], eR[:3], eR[3] + (eR[4] - eR[3]) * 0.4,
                              strap_r - v * w + up * 0.3 * r_sh, strap_r + v * w + up * 0.3 * r_sh,
                              scoop - v * 0.03 * pg, scoop + v * 0.03 * pg, strap_l - v * w + up * 0.3 * r_sh])
            pa.fill([tank], top, dark, in_mask=True)
        else:
            pa.fill([outline], top, dark)
            # round neckline: skin showing below the neck, a ribbed collar around it
            c0 = T["neck"] + up * 0.3 * r_neck
            opening = c0 + _HALF_COS[:, None] * v * r_neck * 0.9 - _HALF_SIN[:, None] * up * r_neck * 0.6
            pa.lines([opening], shade(top, 0.7), max(1.0, 0.022 * pg))
            pa.fill([opening], s.skin, in_mask=False)
        # shading on the side away from the light
        lit_left = (v @ _LIGHT) > 0
        e_far = eR if lit_left else eL
        e_near = eL if lit_left else eR
        band = e_far + (e_near - e_far) * 0.2
        pa.fill([np.vstack([e_far, band[::-1]])], shade(top, 0.82), in_mask=False)
        # pattern
        acc = s.top_accent
        if s.pattern == "stripes":
            polys = []
            a, b = self._edges(_STRIPES, T, pg)
            for i in range(0, len(_STRIPES), 2):
                polys.append(np.vstack([a[i:i + 2], b[i:i + 2][::-1]]))
            pa.fill(polys, acc, in_mask=False)
        elif s.pattern == "chevron":
            polys = []
            for t0 in (0.35, 0.55):
                a, b = self._edges(np.array([t0, t0 + 0.08]), T, pg)
                ca = (a[0] + b[0]) / 2 - up * 0.12 * T["len"]
                cb = (a[1] + b[1]) / 2 - up * 0.12 * T["len"]
                polys.append(np.vstack([a[0], ca, b[0], b[1], cb, a[1]]))
            pa.fill(polys, acc, in_mask=False)
        elif s.pattern == "logo":
            c = T["mid"] + (T["neck"] - T["mid"]) * 0.66
            r = 0.065 * pg
            k = np.arange(10)
            rad = np.where(k % 2 == 0, r, 0.45 * r)
            ang = -np.pi / 2 + k * np.pi / 5
            star = c + (np.cos(ang)[:, None] * v[None] + np.sin(ang)[:, None] * -up[None]) * rad[:, None]
            pa.fill([ellipse(c, v * r * 1.35, up * r * 1.35, 20)], shade(acc, 1.0), in_mask=False)
            pa.fill([star], shade(top, 1.25), in_mask=False)
        else:  # plain: a chest pocket with a contrasting edge
            c = T["mid"] + (T["neck"] - T["mid"]) * 0.62 + (T["ls"] - T["neck"]) * 0.45
            w, hh = 0.045 * pg, 0.05 * pg
            pocket = np.vstack([c - v * w + up * hh, c + v * w + up * hh, c + v * w - up * hh, c - v * w - up * hh])
            pa.fill([pocket], shade(top, 0.85), acc, in_mask=False)
        if s.belt:
            a, b = self._edges(np.array([0.1, 0.18]), T, pg)
            pa.fill([np.vstack([a, b[::-1]])], s.belt_color, in_mask=True)
            bc = (a.mean(axis=0) + b.mean(axis=0)) / 2
            bw = 0.025 * pg
            buckle = np.vstack([bc - v * bw + up * bw, bc + v * bw + up * bw,
                                bc + v * bw - up * bw, bc - v * bw - up * bw])
            pa.fill([buckle], (205, 180, 90), in_mask=False)

    def _hips(self, pa: Painter, P: np.ndarray, ok: np.ndarray, T: dict, pg: float) -> None:
        """Pants seat between the thighs (or a skirt)."""
        s = self.s
        v, up = T["v"], T["up"]
        eL, eR = self._edges(np.array([0.2, 0.0]), T, pg)
        crotch = T["mid"] - up * 0.22 * T["len"]
        if s.bottom_style == "skirt":
            def hem(side: str, sign: float) -> np.ndarray:
                Hh, K = B[f"{side}Hip"], B[f"{side}Knee"]
                base = T["lh"] if side == "L" else T["rh"]
                if ok[Hh] and ok[K]:
                    base = P[Hh] + (P[K] - P[Hh]) * 0.72
                else:
                    base = base - up * 0.4 * T["len"]
                return base + v * sign * 0.13 * pg
            hl, hr = hem("L", 1.0), hem("R", -1.0)
            sag = -up * 0.03 * T["len"]
            poly = np.vstack([eL, hl, hl * 0.66 + hr * 0.34 + sag, hl * 0.34 + hr * 0.66 + sag, hr, eR[::-1]])
            pa.fill([poly], s.bottom, shade(s.bottom, 0.6))
            pa.lines([np.vstack([hl, hl * 0.66 + hr * 0.34 + sag, hl * 0.34 + hr * 0.66 + sag, hr])],
                     s.top_accent, max(1.0, 0.02 * pg))
            return
        seat = [eL[0], eL[1]]
        for side, sign in (("L", 1.0), ("R", -1.0)):
            Hh, K = B[f"{side}Hip"], B[f"{side}Knee"]
            if ok[Hh] and ok[K]:
                d = _unit(P[K] - P[Hh])
                seat.append(P[Hh] + d * 0.18 * T["len"] + _perp(d) * 0.0)
            if side == "L":
                seat.append(crotch)
        seat += [eR[1], eR[0]]
        pa.fill([np.vstack(seat)], s.bottom, shade(s.bottom, 0.6))

    # ------------------------------------------------------------ head
    def _head_geometry(self, P: np.ndarray, ok: np.ndarray, ppm: float | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, bool] | None:
        """(centre, up, right, head height px, has_face) of the head, or None when nothing shows it."""
        F = P[_F0:_F0 + N_FACE]
        fok = ok[_F0:_F0 + N_FACE]
        s = self.s
        if fok.sum() >= 50 and fok[[0, 8, 16, 27]].all():
            hp_v = float(np.hypot(*(F[27] - F[8]))) / 0.53
            hp_h = float(np.hypot(*(F[16] - F[0]))) / 0.71
            hp = max(hp_v, hp_h, 1.0)
            up = _unit(F[27] - F[8])
            right = -_perp(up)  # person's left in a frontal view (image right)
            if right @ (F[16] - F[0]) < 0:
                right = -right
            centre = (F[0] + F[16]) / 2
            return centre, up, right, hp, True
        pts = [P[i] for i in (B["REar"], B["LEar"], B["REye"], B["LEye"], B["Nose"]) if ok[i]]
        if not pts:
            return None
        hp = s.head * ppm if ppm else None
        if ok[B["REar"]] and ok[B["LEar"]]:
            centre = (P[B["REar"]] + P[B["LEar"]]) / 2
            hp = hp or float(np.hypot(*(P[B["LEar"]] - P[B["REar"]]))) / 0.8
        else:
            centre = np.mean(pts, axis=0)
        if hp is None:
            return None
        if ok[B["Neck"]]:
            up = _unit(centre - P[B["Neck"]])
        else:
            up = np.array([0.0, -1.0])
        right = -_perp(up)
        return centre, up, right, hp, False

    def _neck(self, pa: Painter, P: np.ndarray, ok: np.ndarray, head: tuple, pg: float) -> None:
        if not ok[B["Neck"]]:
            return
        c, up, right, hp, _ = head
        top = c - up * 0.22 * hp
        r = min(0.055 * pg, 0.16 * hp)
        pa.limb(P[B["Neck"]] - up * r * 0.5, top, r * 1.05, r, self.s.skin)

    def _local(self, head: tuple, pts: np.ndarray) -> np.ndarray:
        """Head-local (x right, y up; head heights) -> pixels."""
        c, up, right, hp, _ = head
        return c[None] + hp * (pts[:, 0:1] * right[None] + pts[:, 1:2] * up[None])

    def _hair_back(self, pa: Painter, head: tuple) -> None:
        s = self.s
        if s.hair_style == "long":
            pa.fill([self._local(head, self._hair["long"])], shade(s.hair, 0.85), shade(s.hair, 0.55))
        else:  # ponytail behind the head, to the side
            c, up, right, hp, _ = head
            tail = self._local(head, np.array([[0.38, 0.2]]))[0]
            pa.fill([ellipse(tail - up * 0.2 * hp + right * 0.08 * hp, right * 0.12 * hp, up * 0.35 * hp, 16)],
                    shade(s.hair, 0.85), shade(s.hair, 0.55))

    def _head(self, pa: Painter, P: np.ndarray, ok: np.ndarray, head: tuple) -> None:
        s = self.s
        c, up, right, hp, has_face = head
        skin, skin_dark = s.skin, shade(s.skin, 0.62)
        # ears behind the skull
        for e in (B["REar"], B["LEar"]):
            if ok[e]:
                pa.fill([ellipse(P[e], right * 0.065 * hp, up * 0.11 * hp, 12)], shade(skin, 0.92), skin_dark)
        if s.hair_style == "bun":
            pa.fill([ellipse(c + up * 0.52 * hp, right * 0.16 * hp, up * 0.14 * hp, 16)], s.hair, shade(s.hair, 0.55))
        skull = ellipse(c + up * 0.03 * hp, right * 0.385 * hp, up * 0.47 * hp)
        F = P[_F0:_F0 + N_FACE]
        pa.fill([skull], skin, None)
        if has_face:  # the jaw line of the face points (fillPoly would cancel overlaps: separate calls)
            pa.fill([np.vstack([F[0:17], self._local(head, np.array([[0.36, 0.15], [-0.36, 0.15]]))])], skin, None)
        pa.lines([F[0:17]] if has_face else [skull], skin_dark, 1.0, closed=not has_face)
        if has_face:
            self._face(pa, F, hp)
        else:
            for e in (B["REye"], B["LEye"]):
                if ok[e]:
                    pa.circle(P[e], max(0.6, 0.035 * hp), (40, 30, 30))
            pa.lines([self._local(head, np.array([[-0.08, -0.28], [0.08, -0.28]]))], shade(s.lips, 0.8),
                     max(1.0, 0.025 * hp))
        self._hair_front(pa, head)

    def _face(self, pa: Painter, F: np.ndarray, hp: float) -> None:
        s = self.s
        brow = shade(s.hair, 0.8)
        lw = max(1.0, 0.028 * hp)
        # eyes: whites, iris, upper lid
        small = hp < 26
        for eye, pupil in ((F[36:42], F[68]), (F[42:48], F[69])):
            if small:
                pa.circle(pupil, max(0.7, 0.04 * hp), (35, 25, 25))
            else:
                pa.fill([eye], (245, 245, 240), None, in_mask=False)
                pa.circle(pupil, 0.032 * hp, shade(s.eyes, 0.9))
                pa.circle(pupil, 0.014 * hp, (15, 10, 10))
                pa.lines([eye[0:4]], (40, 30, 30), max(1.0, 0.016 * hp))
        pa.lines([F[17:22], F[22:27]], brow, lw)
        # nose: bridge on the shaded side, nostrils line
        pa.lines([F[31:36]], shade(s.skin, 0.6), max(1.0, 0.02 * hp))
        pa.lines([F[27:31]], shade(s.skin, 0.8), max(1.0, 0.018 * hp))
        # mouth
        pa.fill([F[48:60]], s.lips, shade(s.lips, 0.7), in_mask=False)
        inner = F[60:68]
        gap = float(np.hypot(*(inner[2] - inner[6])))
        if gap > 0.02 * hp:
            pa.fill([inner], (90, 25, 30), in_mask=False)
        else:
            pa.lines([F[[48, 60, 61, 62, 63, 64, 54]]], shade(s.lips, 0.55), 1.0)

    def _hair_front(self, pa: Painter, head: tuple) -> None:
        s = self.s
        pa.fill([self._local(head, self._hair["front"])], s.hair, shade(s.hair, 0.55))
        pa.lines([self._local(head, self._hair["shine"])], shade(s.hair, 1.35), max(1.0, 0.03 * head[3]))


def _hair_templates(style: str) -> dict[str, np.ndarray]:
    """Head-local (x right, y up; head heights) hair shapes of a style."""
    line = {"short": 0.26, "curly": 0.27, "long": 0.22, "bun": 0.24, "ponytail": 0.23}[style]
    th = np.linspace(-0.32, np.pi + 0.32, 22)
    rr = 1.0 + (0.06 * np.cos(11 * th) if style == "curly" else 0.0)
    outer = np.stack([0.415 * rr * np.cos(th), 0.05 + 0.49 * rr * np.sin(th)], -1)
    fx = np.linspace(-0.37, 0.37, 9)
    fringe_y = line - 0.14 * (np.abs(fx) / 0.37) ** 2.2 + (0.025 * np.cos(9 * fx) if style != "short" else 0.0)
    sh = np.linspace(1.9, 2.7, 5)
    tb = np.linspace(0, np.pi, 12)
    top = np.stack([0.46 * np.cos(tb), 0.1 + 0.45 * np.sin(tb)], -1)
    return {
        "front": np.vstack([outer, np.stack([fx, fringe_y], -1)]),
        "shine": np.stack([0.3 * np.cos(sh), 0.05 + 0.40 * np.sin(sh)], -1),
        "long": np.vstack([top, [[-0.5, -0.7], [-0.3, -0.85], [0.3, -0.85], [0.5, -0.7]]]),
    }
