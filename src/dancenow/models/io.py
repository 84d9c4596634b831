"""Save and load model components as folders: `config.json` + `model.safetensors`.

config.json holds the format tag, the module class name, the config dataclass
(name and fields) and the dancenow version that wrote it. Loading is strict:
a missing file, an unknown class, an incompatible version (different
major.minor), a config field that does not exist, or any missing / unexpected
/ mis-shaped weight raises `InputError` naming the folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, get_type_hints

import torch
from torch import nn

from dancenow import __version__
from dancenow.atomic import atomic_dir, write_json
from dancenow.errors import InputError
from dancenow.models.discriminator import (
    DiscriminatorConfig,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
)
from dancenow.models.face import FaceGenerator, FaceGeneratorConfig
from dancenow.models.generator import GeneratorConfig, GlobalGenerator, LocalEnhancer
from dancenow.models.person import PersonGenerator, PersonGeneratorConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "dancenow-component"

# Class name -> (module class, config class). A constant table, not a registry.
COMPONENTS: dict[str, tuple[type[nn.Module], type]] = {
    "GlobalGenerator": (GlobalGenerator, GeneratorConfig),
    "LocalEnhancer": (LocalEnhancer, GeneratorConfig),
    "NLayerDiscriminator": (NLayerDiscriminator, DiscriminatorConfig),
    "MultiscaleDiscriminator": (MultiscaleDiscriminator, DiscriminatorConfig),
    "FaceGenerator": (FaceGenerator, FaceGeneratorConfig),
    "PersonGenerator": (PersonGenerator, PersonGeneratorConfig),
}
# How a class is built from its config when that is not `cls(config)`.
BUILDERS: dict[str, Callable[[Any], nn.Module]] = {"PersonGenerator": PersonGenerator.from_config}


def config_from_fields(config_cls: type, fields: dict[str, Any]) -> Any:
    """A config dataclass from its JSON fields; nested config dataclasses are rebuilt too.

    Raises ValueError on an unknown field or a nested value that is not an object."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields {unknown}")
    hints = get_type_hints(config_cls)
    values = {}
    for k, v in fields.items():
        sub = hints.get(k)
        if dataclasses.is_dataclass(sub):
            if not isinstance(v, dict):
                raise ValueError(f"{config_cls.__name__}.{k} must be an object")
            v = config_from_fields(sub, v)
        elif isinstance(v, list):
            v = tuple(v)
        values[k] = v
    return config_cls(**values)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def save_component(module: nn.Module, config: Any, directory: str | Path) -> Path:
    """Write `module` and its `config` to `directory` (config.json + model.safetensors).

    Atomic (`dancenow.atomic.atomic_dir`): both files are written into a temporary
    sibling folder that then replaces `directory`. An existing `directory` is replaced
    only if it holds nothing but those two files. Weights are saved on the CPU in their
    current dtype. Equal weights and config give byte-identical files (fixed order).
    Returns the folder path.
    """
    from safetensors.torch import save_file

    name = type(module).__name__
    if name not in COMPONENTS or type(module) is not COMPONENTS[name][0]:
        raise TypeError(f"save_component: unsupported module class {name}; known: {sorted(COMPONENTS)}")
    config_cls = COMPONENTS[name][1]
    if not isinstance(config, config_cls):
        raise TypeError(f"save_component: {name} needs a {config_cls.__name__}, got {type(config).__name__}")
    if getattr(module, "config", config) != config:
        raise ValueError(f"save_component: config {config} differs from the module's {module.config}")

    directory = Path(directory)
    if directory.exists():
        extra = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else [directory.name]
        if not directory.is_dir() or set(extra) - {CONFIG_FILE, WEIGHTS_FILE}:
            raise InputError(
                directory, f"exists and is not a dancenow component folder (holds {extra}); not overwriting"
            )
    meta = {
        "format": FORMAT,
        "class": name,
        "config_class": config_cls.__name__,
        "config": dataclasses.asdict(config),
        "dancenow_version": __version__,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sorted(module.state_dict().items())}
    # One metadata key: safetensors keeps the header's metadata in a Rust HashMap, so
    # several keys come out in a different order from one save to the next.
    header = {"dancenow": json.dumps({"class": name, "dancenow_version": __version__}, sort_keys=True)}
    with atomic_dir(directory) as tmp:
        write_json(tmp / CONFIG_FILE, meta)
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=header)
    return directory


def read_component_config(directory: str | Path) -> tuple[str, Any]:
    """(class name, config dataclass) from a component folder's config.json, validated."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise InputError(directory, "component folder not found")
    if not cfg_path.is_file():
        raise InputError(directory, f"missing {CONFIG_FILE}")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(directory, f"unreadable {CONFIG_FILE}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(directory, f"{CONFIG_FILE} is not a dancenow component config")
    version = str(meta.get("dancenow_version"))
    if _major_minor(version) != _major_minor(__version__):
        raise InputError(
            directory, f"written by dancenow {version}, incompatible with this dancenow {__version__}"
        )
    name = meta.get("class")
    if name not in COMPONENTS:
        raise InputError(directory, f"unknown component class {name!r}; known: {sorted(COMPONENTS)}")
    config_cls = COMPONENTS[name][1]
    if meta.get("config_class") != config_cls.__name__:
        raise InputError(
            directory, f"config class {meta.get('config_class')!r} does not fit {name} ({config_cls.__name__})"
        )
    fields = meta.get("config")
    if not isinstance(fields, dict):
        raise InputError(directory, f"{CONFIG_FILE} has no config object")
    try:
        config = config_from_fields(config_cls, fields)
    except ValueError as e:
        if str(e).startswith("unknown "):
            raise InputError(directory, str(e)) from e
        raise InputError(directory, f"invalid {config_cls.__name__}: {e}") from e
    except TypeError as e:
        raise InputError(directory, f"invalid {config_cls.__name__}: {e}") from e
    return name, config


def load_component(
    directory: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, Any]:
    """Rebuild a component saved by `save_component`: returns (module, config).

    The module is in eval mode, on `device`, and in `dtype` if given (else the
    saved dtype, usually float32). Strict: see the module doc.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    name, config = read_component_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(directory, f"missing {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights), device="cpu")
    except (OSError, SafetensorError) as e:
        raise InputError(directory, f"unreadable {WEIGHTS_FILE}: {e}") from e
    try:
        module = BUILDERS.get(name, COMPONENTS[name][0])(config)
    except ValueError as e:
        raise InputError(directory, f"cannot build {name} from its config: {e}") from e
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            directory,
            f"{WEIGHTS_FILE} does not fit {name}: missing keys {missing}, unexpected keys {unexpected}",
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise InputError(directory, f"{WEIGHTS_FILE} does not fit {name}: wrong shapes {wrong}")
    saved_dtype = next(iter(state.values())).dtype if state else torch.float32
    module.to(dtype=saved_dtype)
    module.load_state_dict(state, strict=True)
    module.to(device=device, dtype=dtype)
    module.eval()
    return module, config


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} state dict from `.safetensors` or a torch file, never unpickling
    anything but tensors (`weights_only=True`); InputError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise InputError(path, f"cannot read as a torch/safetensors state dict ({what}): {e}") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise InputError(path, f"expected a flat state dict {{name: tensor}} ({what})")
    return sd
