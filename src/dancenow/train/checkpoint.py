"""Checkpoints: each network as a component folder (config.json + model.safetensors),
optimizer states flattened into safetensors, the loop's position in state.json.

    RUN_DIR/checkpoints/latest/
        generator/  discriminator/  face_generator/  face_discriminator/
        (with ema_decay: generator/ and face_generator/ hold the averages, the trained weights
        are in generator_train/ and face_generator_train/)
        optimizers.safetensors   optimizers.json   state.json   (scalers.json: fp16 runs)

A checkpoint is written into a temporary folder and swapped in by renames, so an
interrupted save never leaves a half-written `latest`. Nothing here unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dancenow.atomic import atomic_dir, write_json
from dancenow.errors import InputError
from dancenow.models.io import load_component, save_component

STATE_FILE = "state.json"
SCALERS_FILE = "scalers.json"


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sorted(sd["state"].items()):
        for k, v in sorted(st.items()):
            key = f"{name}.{idx}.{k}"
            if torch.is_tensor(v):
                tensors[key] = v.detach().cpu().contiguous()
            else:
                scalars[key] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    prefix = name + "."
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key[len(prefix):].split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(ckpt_dir: str | Path, components: dict[str, tuple[torch.nn.Module, Any]],
                    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any],
                    scalers: dict[str, torch.amp.GradScaler] | None = None) -> Path:
    """Write a complete checkpoint to `ckpt_dir` atomically (`dancenow.atomic.atomic_dir`).

    The files depend only on the weights, optimizer states and `state`, not on the
    order things were built in, so a resumed run ends with the same bytes.
    scalers: the fp16 gradient scalers by optimizer name (their state goes to scalers.json)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        t, m = _flatten_optimizer(name, opt)
        tensors.update(t)
        meta[name] = m
    with atomic_dir(ckpt_dir) as tmp:
        for name, (module, config) in components.items():
            save_component(module, config, tmp / name)
        save_file(dict(sorted(tensors.items())), str(tmp / "optimizers.safetensors"))
        write_json(tmp / "optimizers.json", meta)
        write_json(tmp / STATE_FILE, state)
        if scalers:
            write_json(tmp / SCALERS_FILE, {k: s.state_dict() for k, s in scalers.items()})
    return Path(ckpt_dir)


def read_state(ckpt_dir: str | Path) -> dict[str, Any]:
    f = Path(ckpt_dir) / STATE_FILE
    if not f.is_file():
        raise InputError(ckpt_dir, "no checkpoint here (state.json missing)")
    return json.loads(f.read_text())


def load_into(ckpt_dir: str | Path, name: str, module: torch.nn.Module) -> None:
    """Strictly load component `name` of a checkpoint into an existing module."""
    loaded, _ = load_component(Path(ckpt_dir) / name, device="cpu")
    module.load_state_dict(loaded.state_dict(), strict=True)


def load_optimizers(ckpt_dir: str | Path, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    ckpt_dir = Path(ckpt_dir)
    tensors = load_file(str(ckpt_dir / "optimizers.safetensors"))
    meta = json.loads((ckpt_dir / "optimizers.json").read_text())
    for name, opt in optimizers.items():
        if name not in meta:
            raise InputError(ckpt_dir, f"checkpoint has no optimizer state for {name}")
        _unflatten_optimizer(name, opt, tensors, meta[name])


def load_scalers(ckpt_dir: str | Path, scalers: dict[str, torch.amp.GradScaler]) -> None:
    """Restore fp16 gradient scalers (scale and growth tracker) so a resumed run stays exact."""
    if not scalers:
        return
    f = Path(ckpt_dir) / SCALERS_FILE
    if not f.is_file():
        raise InputError(ckpt_dir, f"checkpoint has no {SCALERS_FILE} (was it trained without fp16?)")
    saved = json.loads(f.read_text())
    for name, scaler in scalers.items():
        if name not in saved:
            raise InputError(f, f"no gradient scaler state for {name}")
        scaler.load_state_dict(saved[name])
