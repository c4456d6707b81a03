"""Bad checkpoints and bad requests end as clear ``workbench.errors`` errors."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from workbench.errors import ModelUnavailable, UsageError, WorkbenchError
from workbench.models import local
from workbench.models.base import GenerationRequest, Model
from workbench.models.config import ContextLengthError, ModelLoadError, UnsupportedModelError
from workbench.models.local import LocalModel
from workbench.models.registry import resolve_model


@pytest.fixture
def copy(checkpoints, tmp_path):
    """A private copy of the llama checkpoint that a test may break."""

    def make(family: str = "llama") -> Path:
        target = tmp_path / family
        shutil.copytree(checkpoints[family].path, target)
        return target

    return make


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def test_not_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        LocalModel.from_pretrained(tmp_path / "nope")


def test_missing_config(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        LocalModel.from_pretrained(tmp_path)


def test_missing_weights(copy):
    path = copy()
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(
        ModelLoadError, match=r"no weights.*model\.safetensors.*\.bin checkpoints are not supported"
    ):
        LocalModel.from_pretrained(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_weights(copy, damage):
    path = copy()
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"\x00not safetensors at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        LocalModel.from_pretrained(path)


def test_sharded_index_naming_a_missing_file(copy):
    path = copy()
    index = {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match=r"model-00001-of-00002\.safetensors is missing"):
        LocalModel.from_pretrained(path)


def test_unsupported_architecture_lists_supported_ones(copy):
    path = copy()
    edit_config(path, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(UnsupportedModelError) as info:
        LocalModel.from_pretrained(path)
    message = str(info.value)
    for name in (
        "GPT2LMHeadModel",
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
    ):
        assert name in message
    assert isinstance(info.value, ModelUnavailable)


def test_unsupported_rope_type(copy):
    path = copy()
    edit_config(path, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0})
    with pytest.raises(UnsupportedModelError, match="rope type 'yarn'"):
        LocalModel.from_pretrained(path)


def test_shape_mismatch_names_the_tensor(copy):
    path = copy()
    edit_config(path, intermediate_size=96)
    with pytest.raises(ModelLoadError, match=r"mlp\.gate_proj\.weight.*shape \[128, 64\].*\[96, 64\]"):
        LocalModel.from_pretrained(path)


def test_missing_tokenizer(copy):
    path = copy()
    (path / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is missing"):
        LocalModel.from_pretrained(path)


def test_prompt_longer_than_the_context(checkpoints):
    model = LocalModel.from_pretrained(checkpoints["llama"].path)
    long_prompt = "x" * 400  # ~400 tokens; the test models hold 256
    with pytest.raises(ContextLengthError, match="context holds 256"):
        model.generate_sync([GenerationRequest(prompt=long_prompt)])
    with pytest.raises(ContextLengthError):
        asyncio.run(model.generate([GenerationRequest(prompt=long_prompt)]))
    assert issubclass(ContextLengthError, UsageError)
    # a prompt that fits but leaves less room than max_tokens stops at the context's end
    fits = "x" * 250
    [gen] = model.generate_sync([GenerationRequest(prompt=fits, max_tokens=100)])
    assert gen.finish_reason == "length" and gen.input_tokens + gen.output_tokens == 256


def test_bad_requests(checkpoints):
    model = LocalModel.from_pretrained(checkpoints["llama"].path)
    with pytest.raises(UsageError, match="prompt or messages"):
        model.generate_sync([GenerationRequest()])
    with pytest.raises(UsageError, match="max_tokens"):
        model.generate_sync([GenerationRequest(prompt="x", max_tokens=-1)])
    for bad, field in [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"seed": 1.5}, "seed"),
        ({"stop": ["ok", 3]}, "stop"),
    ]:
        with pytest.raises(UsageError, match=field):
            model.generate_sync([GenerationRequest(prompt="x", **bad)])
    # a bare string is one stop string; any int is a seed
    [gen] = model.generate_sync([GenerationRequest(prompt="x", max_tokens=3, stop="zz", seed=-(2**70))])
    assert gen.output_tokens == 3
    with pytest.raises(UsageError, match="dtype"):
        LocalModel.from_pretrained(checkpoints["llama"].path, dtype="int8")


def test_registry_backends(checkpoints, tmp_path, monkeypatch):
    model = resolve_model({"local": str(checkpoints["qwen2"].path)})
    assert isinstance(model, LocalModel) and isinstance(model, Model) and model.name == "qwen2"
    assert resolve_model({"local": str(checkpoints["qwen2"].path)}) is model  # loaded once
    monkeypatch.setattr(local, "DEFAULT_MODEL_DIR", tmp_path / "empty")
    with pytest.raises(ModelUnavailable, match="built-in tiny model is not in this installation"):
        local._load_default()
    with pytest.raises(WorkbenchError):
        resolve_model({"local": str(tmp_path / "missing")})


@pytest.mark.skipif(
    not (local.DEFAULT_MODEL_DIR / "model.safetensors").exists(), reason="tiny model not built"
)
def test_default_model_loads_and_generates():
    model = local._load_default()
    assert model.name == "default" and model.tokenizer.eos_token_ids
    [gen] = model.generate_sync(
        [GenerationRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8)]
    )
    assert gen.finish_reason in ("stop", "length") and gen.input_tokens > 0
