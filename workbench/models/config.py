"""Read a Hugging Face ``config.json`` into the one ``ModelConfig`` the runtime knows.

Every supported family is the same decoder (pre-norm RMSNorm, rotary attention with grouped
query heads, SwiGLU MLP); the families differ only in a few switches, listed in
``SUPPORTED_ARCHITECTURES``:

    family       switches
    llama        (Llama 2, Llama 3.x with llama3 rope scaling, SmolLM2 with tied embeddings)
    mistral      like llama; a sliding window caps the context
    qwen2        bias on q/k/v projections
    qwen3        RMSNorm on each query and key head before rotary

Errors a user can cause (a missing file, an unknown architecture) are ``ModelLoadError`` /
``UnsupportedModelError``; both are ``workbench.errors.ModelUnavailable``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelUnavailable, UsageError

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "ContextLengthError",
    "ModelConfig",
    "ModelLoadError",
    "UnsupportedModelError",
    "load_config",
]


class ModelLoadError(ModelUnavailable):
    """A checkpoint that cannot be loaded: missing or corrupt files, mismatched shapes."""


class UnsupportedModelError(ModelLoadError):
    """A checkpoint whose architecture (or rope variant) this runtime does not implement."""


class ContextLengthError(UsageError):
    """A prompt that does not fit the model's context window."""


SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
_ARCH_TO_TYPE = {arch: model_type for model_type, arch in SUPPORTED_ARCHITECTURES.items()}
# rope variants whose frequencies workbench.kernels.rotary_cos_sin knows how to build
_ROPE_TYPES = {"default", "llama3", "linear"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelConfig:
    """The shape and switches of one Llama-family decoder."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # None or {"rope_type": "llama3", "factor": ...}
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    checkpoint_dtype: torch.dtype = torch.float32
    eos_token_ids: list[int] = field(default_factory=list)
    bos_token_id: int | None = None

    @property
    def context_length(self) -> int:
        """The most positions (prompt plus generated tokens) one sequence may occupy."""
        return self.max_position_embeddings


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing: a checkpoint directory needs config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} holds {type(data).__name__}, expected a JSON object")
    return data


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _model_type(raw: dict[str, Any], path: Path) -> str:
    archs = raw.get("architectures") or []
    for arch in archs:
        if arch in _ARCH_TO_TYPE:
            return _ARCH_TO_TYPE[arch]
    model_type = raw.get("model_type")
    if model_type in SUPPORTED_ARCHITECTURES:
        return str(model_type)
    supported = ", ".join(f"{t} ({a})" for t, a in SUPPORTED_ARCHITECTURES.items())
    found = ", ".join(archs) or model_type or "nothing"
    raise UnsupportedModelError(
        f"{path}: architecture {found!r} is not supported by the local runtime; supported: {supported} "
        "(SmolLM2 and Llama 2/3.x checkpoints declare LlamaForCausalLM)"
    )


def _rope(raw: dict[str, Any], path: Path) -> tuple[float, dict[str, Any] | None]:
    # transformers >= 5 writes "rope_parameters" (theta inside); older files "rope_theta" + "rope_scaling"
    params = dict(raw.get("rope_parameters") or {})
    scaling = dict(raw.get("rope_scaling") or {}) or {k: v for k, v in params.items() if k != "rope_theta"}
    theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type not in _ROPE_TYPES:
        raise UnsupportedModelError(
            f"{path}: rope type {rope_type!r} is not supported; supported: {', '.join(sorted(_ROPE_TYPES))}"
        )
    if rope_type == "default":
        return theta, None
    scaling["rope_type"] = rope_type
    return theta, scaling


def _partial_rotary_check(raw: dict[str, Any], path: Path) -> None:
    if float(raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UnsupportedModelError(f"{path}: partial rotary embeddings are not supported")
    if raw.get("hidden_act", "silu") != "silu":
        act = raw.get("hidden_act")
        raise UnsupportedModelError(f"{path}: activation {act!r} is not supported (silu only)")


def load_config(directory: str | Path) -> ModelConfig:
    """Read ``directory/config.json`` (and ``generation_config.json`` for EOS ids) into a ``ModelConfig``."""
    directory = Path(directory)
    path = directory / "config.json"
    raw = _read_json(path)
    model_type = _model_type(raw, path)
    _partial_rotary_check(raw, path)
    try:
        hidden = int(raw["hidden_size"])
        heads = int(raw["num_attention_heads"])
        kv_heads = int(raw.get("num_key_value_heads") or heads)
        head_dim = int(raw.get("head_dim") or hidden // heads)
        theta, scaling = _rope(raw, path)
        context = int(raw.get("max_position_embeddings", 2048))
        # Mistral v0.1 attends within a sliding window; we do not implement the window, so
        # we refuse positions past it rather than silently attend further than the model did.
        window = raw.get("sliding_window")
        if window and (model_type == "mistral" or raw.get("use_sliding_window")):
            context = min(context, int(window))
        dtype_name = str(raw.get("dtype") or raw.get("torch_dtype") or "float32")
        config = ModelConfig(
            model_type=model_type,
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            max_position_embeddings=context,
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or bool(raw.get("attention_bias", False)),
            o_bias=model_type != "qwen2" and bool(raw.get("attention_bias", False)),
            mlp_bias=bool(raw.get("mlp_bias", False)),
            qk_norm=model_type == "qwen3",
            checkpoint_dtype=_DTYPES.get(dtype_name, torch.float32),
            eos_token_ids=_as_id_list(raw.get("eos_token_id")),
            bos_token_id=raw.get("bos_token_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: missing or malformed field {exc}") from None
    if heads % kv_heads:
        raise ModelLoadError(f"{path}: {heads} attention heads do not split into {kv_heads} key/value heads")
    generation = directory / "generation_config.json"
    if generation.exists():
        extra = _as_id_list(_read_json(generation).get("eos_token_id"))
        config.eos_token_ids = sorted(set(config.eos_token_ids) | set(extra))
    return config
