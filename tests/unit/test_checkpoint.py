"""Component and checkpoint folders: one atomic writer, one set of permissions, fixed bytes."""

from __future__ import annotations

import collections
import os
import stat
from pathlib import Path

import pytest
import torch

from dancenow.atomic import atomic_dir, write_json
from dancenow.models import GeneratorConfig, build_generator, save_component
from dancenow.train.checkpoint import load_optimizers, save_checkpoint

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


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


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


def test_files_are_independent_of_insertion_order(tmp_path: Path):
    net_a, net_b = _net(), _net()
    opt_a = _stepped_adam(net_a)
    sd = opt_a.state_dict()
    # the same optimizer state, built with parameters and their entries in reverse order
    opt_b = torch.optim.Adam(net_b.parameters(), lr=1e-3)
    opt_b.load_state_dict({"state": {i: dict(reversed(list(s.items()))) for i, s in reversed(sd["state"].items())},
                           "param_groups": sd["param_groups"]})
    assert list(opt_b.state_dict()["state"]) != list(sd["state"])
    net_b.load_state_dict(net_a.state_dict())
    reversed_sd = collections.OrderedDict(reversed(list(net_a.state_dict().items())))
    net_b.state_dict = lambda: reversed_sd  # a module whose state dict comes in another order
    state_a = {"stage": "global", "stage_step": 4, "planned": {"global": 6, "face": 4}}
    state_b = dict(reversed(list(state_a.items())))
    save_checkpoint(tmp_path / "a", {"generator": (net_a, TINY_G)}, {"G": opt_a}, state_a)
    save_checkpoint(tmp_path / "b", {"generator": (net_b, TINY_G)}, {"G": opt_b}, state_b)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # metadata order must not vary from one save to the next either
    for i in range(6):
        save_component(net_a, TINY_G, tmp_path / f"c{i}")
    assert len({(tmp_path / f"c{i}" / "model.safetensors").read_bytes() for i in range(6)}) == 1
    # and the optimizer state still loads back
    opt_c = torch.optim.Adam(_net().parameters(), lr=1e-3)
    load_optimizers(tmp_path / "b", {"G": opt_c})
    assert all(torch.equal(opt_c.state_dict()["state"][i]["exp_avg"], s["exp_avg"]) for i, s in sd["state"].items())


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
