"""Component and checkpoint folders: one atomic writer, one set of permissions, fixed bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from dancenow.atomic import atomic_dir, write_json
from dancenow.models import GeneratorConfig, build_generator, save_component
from dancenow.train.checkpoint import save_checkpoint

TINY_G = GeneratorConfig(in_channels=6, out_channels=3, ngf=4, n_down=1, n_blocks=1)


def _net() -> torch.nn.Module:
    return build_generator(TINY_G, torch.Generator().manual_seed(0))


def _stepped_adam(net: torch.nn.Module) -> torch.optim.Adam:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(1, 6, 8, 8)).mean().backward()
    opt.step()
    return opt


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_saved_file_has_the_mode_of_write_json(tmp_path: Path, umask_022):
    net = _net()
    ref = _mode(write_json(tmp_path / "ref.json", {}))
    assert ref == 0o644
    comp = save_component(net, TINY_G, tmp_path / "comp")
    ckpt = save_checkpoint(tmp_path / "ckpt", {"generator": (net, TINY_G)}, {"G": _stepped_adam(net)}, {"step": 1})
    files = [p for root in (comp, ckpt) for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "config.json", "optimizers.safetensors", "state.json"}
    assert {str(p): oct(_mode(p)) for p in files} == {str(p): oct(ref) for p in files}
    assert {oct(_mode(d)) for d in (comp, ckpt, ckpt / "generator")} == {oct(0o755)}


def test_atomic_dir_swaps_in_or_leaves_the_old_folder(tmp_path: Path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(os.listdir(target)) == ["b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary or old copies left
