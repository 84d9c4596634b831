"""The person window: the generator runs on a box around the skeleton, the plate fills the rest."""

import pytest
import torch

from dancenow.models.generator import GeneratorConfig, build_generator
from dancenow.models.person import PersonGenerator, PersonSpec, crop_windows, person_windows, window_feather


def _labels():
    lab = -torch.ones(2, 3, 64, 96)
    lab[0, :, 10:20, 30:40] = 1.0   # a small figure
    lab[1, :, 40:62, 80:95] = 1.0   # a bigger one at the right edge
    return lab


def test_windows_cover_the_figure_share_one_size_and_stay_inside():
    lab = _labels()
    wins = person_windows([lab], multiple=16, margin=4)
    sizes = {(x1 - x0, y1 - y0) for x0, y0, x1, y1 in wins}
    assert len(sizes) == 1
    (w, h), = sizes
    assert w % 16 == 0 and h % 16 == 0
    assert (w, h) == (32, 32)  # largest box 15x22 + 2 * 4 margin, rounded up to 16
    for (x0, y0, x1, y1), (fx0, fy0, fx1, fy1) in zip(wins, [(30, 10, 40, 20), (80, 40, 95, 62)]):
        assert 0 <= x0 and 0 <= y0 and x1 <= 96 and y1 <= 64
        assert x0 <= fx0 and y0 <= fy0 and fx1 <= x1 and fy1 <= y1


def test_window_uses_all_given_labels_and_empty_means_whole_frame():
    lab = _labels()
    other = -torch.ones_like(lab)
    other[0, :, 50:60, 0:8] = 1.0
    (x0, y0, x1, y1), _ = person_windows([lab, other], multiple=16, margin=2)
    assert x0 == 0 and y1 >= 60 and x1 >= 40
    empty = -torch.ones(1, 3, 32, 48)
    assert person_windows([empty], multiple=16) == [(0, 0, 48, 32)]
    with pytest.raises(ValueError, match="multiple"):
        person_windows([torch.zeros(1, 3, 30, 48)], multiple=16)


def test_windowed_step_is_the_plate_outside_and_the_generator_inside():
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(in_channels=6, out_channels=4, ngf=8, n_down=2, n_blocks=1)).eval()
    bg = torch.rand(1, 3, 64, 96) * 2 - 1
    pg = PersonGenerator(g, PersonSpec(use_window=True), bg)
    lab = _labels()[:1]
    prev = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        out = pg.step(lab, prev)
    (x0, y0, x1, y1), = pg.windows_for(lab)
    outside = torch.ones(64, 96, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert torch.equal(out[0][:, outside], bg[0][:, outside])
    with torch.no_grad():
        raw = g(torch.cat([crop_windows(lab, [(x0, y0, x1, y1)]), prev[:, :, y0:y1, x0:x1]], 1))
    a = (raw[:, 3:4] + 1) / 2 * window_feather([(x0, y0, x1, y1)], (64, 96))
    want = a * raw[:, :3] + (1 - a) * bg[:, :, y0:y1, x0:x1]
    assert torch.allclose(out[:, :, y0:y1, x0:x1], want, atol=1e-6)
    # the window is much smaller than the frame: that is the point
    assert (x1 - x0) * (y1 - y0) < 0.5 * 64 * 96


def test_window_needs_the_background():
    with pytest.raises(ValueError, match="use_background"):
        PersonSpec(use_background=False, use_window=True)


def test_feather_fades_inner_edges_only():
    from dancenow.models.person import window_feather

    f = window_feather([(0, 8, 32, 40)], (64, 96))  # touches the frame's left edge only
    assert f.shape == (1, 1, 32, 32)
    assert float(f[0, 0, 16, 0]) == 1.0          # frame edge: full weight
    assert float(f[0, 0, 16, 31]) < 0.5          # inner edges fade
    assert float(f[0, 0, 0, 16]) < 0.5 and float(f[0, 0, 31, 16]) < 0.5
    assert float(f[0, 0, 16, 16]) == 1.0         # the middle is untouched


def test_coarser_window_steps_give_fewer_shapes_never_past_the_frame():
    torch.manual_seed(0)
    shapes = {16: set(), 48: set()}
    for k in range(40):
        lab = -torch.ones(1, 3, 64, 96)
        h, w = 10 + k % 23, 8 + (3 * k) % 29
        lab[0, :, 5 : 5 + h, 20 : 20 + w] = 1.0
        for step in shapes:
            (x0, y0, x1, y1), = person_windows([lab], multiple=16, margin=4, round_to=step)
            assert (x1 - x0) % 16 == 0 and (y1 - y0) % 16 == 0
            assert x1 - x0 >= w + 8 and y1 - y0 >= h + 8 and x1 <= 96 and y1 <= 64
            shapes[step].add((x1 - x0, y1 - y0))
    assert len(shapes[48]) < len(shapes[16])
    assert all((w % 48 == 0 or w == 96) and (h % 48 == 0 or h == 64) for w, h in shapes[48])
    with pytest.raises(ValueError, match="round_to"):
        person_windows([lab], multiple=16, round_to=24)
