"""Read a checkpoint's safetensors files (single or sharded) and check them against the config.

Sharded checkpoints name their files in ``model.safetensors.index.json`` (``weight_map``:
tensor name -> file); a single-file checkpoint is ``model.safetensors``. Only the tensors the
model needs are read, each converted to the requested dtype on the requested device.
Anything wrong with the files is a ``ModelLoadError`` naming the file or tensor: a missing
tensor, a tensor of the wrong shape, or a tensor the config does not account for (a bias the
config does not declare, a layer past ``num_hidden_layers``), which would otherwise be
dropped without a word and leave a model that computes something else.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from workbench.models.config import ModelConfig, ModelLoadError
from workbench.models.llama import expected_weight_shapes

__all__ = ["load_weights", "weight_files"]

_INDEX = "model.safetensors.index.json"
_SINGLE = "model.safetensors"
# Saved by older transformers versions (rotary tables we compute ourselves): safe to leave out.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def weight_files(directory: Path) -> dict[str, Path]:
    """Tensor name -> file for a sharded checkpoint, or ``{"*": file}`` for a single file."""
    index = directory / _INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{index} is not a valid safetensors index: {exc}") from None
        files = {name: directory / file for name, file in weight_map.items()}
        for file in sorted(set(files.values())):
            if not file.exists():
                raise ModelLoadError(f"{file} is missing (listed in {index.name})")
        return files
    single = directory / _SINGLE
    if single.exists():
        return {"*": single}
    found = sorted(p.name for p in directory.glob("*")) if directory.is_dir() else []
    hint = (
        " (PyTorch .bin checkpoints are not supported: convert them to safetensors)"
        if any(f.endswith(".bin") for f in found)
        else ""
    )
    listing = ", ".join(found) or "nothing"
    raise ModelLoadError(f"{directory} has no weights: expected {_SINGLE} or {_INDEX}; found {listing}{hint}")


def load_weights(
    directory: Path, config: ModelConfig, dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """The tensors ``config`` needs (Hugging Face names), checked for presence and shape."""
    expected = expected_weight_shapes(config)
    files = weight_files(directory)
    by_file: dict[Path, list[str]] = {}
    for name in expected:
        file = files.get(name, files.get("*"))
        if file is None:
            raise ModelLoadError(f"{directory}: tensor {name!r} is not in {_INDEX}")
        by_file.setdefault(file, []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    stored = {name for name in files if name != "*"}  # every tensor the checkpoint holds
    for file, names in by_file.items():
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                present = set(handle.keys())
                stored |= present
                for name in names:
                    if name not in present:
                        raise ModelLoadError(f"{file}: tensor {name!r} is missing")
                    tensors[name] = handle.get_tensor(name)
        except ModelLoadError:
            raise
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{file} is not a readable safetensors file: {exc}") from None
    _check_no_extra(directory, config, stored - expected.keys())
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise ModelLoadError(
                f"{directory}: tensor {name!r} has shape {list(got)}, but config.json implies {list(shape)}"
            )
    return {name: t.to(device=device, dtype=dtype) for name, t in tensors.items()}


def _check_no_extra(directory: Path, config: ModelConfig, extra: set[str]) -> None:
    """Refuse tensors the config has no place for (a tied head saved anyway: ignored, as in transformers)."""
    unused = sorted(
        name
        for name in extra
        if not name.endswith(_IGNORED_SUFFIXES)
        and not (config.tie_word_embeddings and name == "lm_head.weight")
    )
    if unused:
        shown = ", ".join(repr(n) for n in unused[:5]) + (
            f" and {len(unused) - 5} more" if len(unused) > 5 else ""
        )
        raise ModelLoadError(
            f"{directory}: the checkpoint holds {len(unused)} tensor(s) that config.json has no place "
            f"for: {shown}; the config does not describe these weights (wrong num_hidden_layers, "
            "a bias the config does not declare?)"
        )
