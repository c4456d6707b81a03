"""Loading a checkpoint: no random init, its own span, once per process, and loud about bad files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench.api import load
from workbench.errors import ModelUnavailable, UsageError
from workbench.flow import loads as load_text
from workbench.models import registry
from workbench.models.config import ModelLoadError, load_config
from workbench.models.llama import Transformer, fuse_checkpoint
from workbench.models.local import DEFAULT_MODEL_DIR, LocalModel
from workbench.models.registry import load_model, resolve_model
from workbench.models.weights import load_weights
from workbench.runtime import Executor
from workbench.spans import MemoryTracer

NEWS = "BOLT shares jump after a record quarter; the stock trades at 12.50"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty model cache for this test (the process-wide one is put back afterwards)."""
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.setattr(registry, "_LOADING", {})


@pytest.fixture
def loads(monkeypatch) -> list[Path]:
    """Every real ``LocalModel.from_pretrained`` call of the test, by checkpoint directory."""
    calls: list[Path] = []
    real = LocalModel.from_pretrained.__func__

    def counting(cls, path, *args, **kwargs):
        calls.append(Path(path).resolve())
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(LocalModel, "from_pretrained", classmethod(counting))
    return calls


def checkpoint_params(directory: Path) -> int:
    return sum(t.numel() for t in load_file(directory / "model.safetensors").values())


def test_a_traced_run_loads_the_model_in_its_own_span_before_the_chat_span(fresh_cache, loads):
    tracer = MemoryTracer()
    executor = Executor(load("trader"), tracer=tracer)
    result = executor.run({"news": NEWS, "cash": 1000.0})
    assert result.status == "ok", result.error
    (root,) = tracer.by_name("invoke_flow")
    (loading,) = tracer.by_name("workbench.model.load")
    (chat,) = tracer.by_name("chat")
    assert loading.parent_id == root.span_id and chat.parent_id == root.span_id
    assert loading.status == "OK" and loading.end_ns <= chat.start_ns  # the chat span is generation only
    attrs = loading.attributes
    assert attrs["workbench.model.cached"] is False
    assert attrs["workbench.model.path"] == str(DEFAULT_MODEL_DIR)
    assert attrs["workbench.model.params"] == checkpoint_params(DEFAULT_MODEL_DIR) > 0
    assert (attrs["workbench.model.dtype"], attrs["workbench.model.device"]) == ("float32", "cpu")
    assert 0 < attrs["workbench.model.load_seconds"] <= attrs["workbench.model.seconds"]
    assert (attrs["workbench.model.spec"], attrs["workbench.model.node"]) == ("default", "analyst")
    # not a model call nor a node of its own in the trace store's views
    assert not any(k.startswith("gen_ai.") or k == "workbench.node.name" for k in attrs)

    # The same executor again: the node holds its model, no load at all.
    assert executor.run({"news": NEWS, "cash": 1000.0}).status == "ok"
    assert len(tracer.by_name("workbench.model.load")) == 1
    # Another executor (another run of `workbench run` in this process): a cache hit, recorded.
    again = MemoryTracer()
    assert Executor(load("trader"), tracer=again).run({"news": NEWS, "cash": 1000.0}).status == "ok"
    (hit,) = again.by_name("workbench.model.load")
    assert hit.attributes["workbench.model.cached"] is True
    assert hit.attributes["workbench.model.seconds"] < attrs["workbench.model.seconds"]
    assert loads == [DEFAULT_MODEL_DIR.resolve()]


TWO_NODES = """
flow: twins
inputs: {topic: str}
outputs: {a: str, b: str}
nodes:
  left:
    {kind: llm, model: default, prompt: "{{ topic }}", inputs: {topic: str}, outputs: {a: str}, max_tokens: 4}
  right:
    {kind: llm, model: tiny, prompt: "{{ topic }}", inputs: {topic: str}, outputs: {b: str}, max_tokens: 4}
models:
  tiny: {local: PATH}
wires: [topic -> left.topic, topic -> right.topic, left.a -> a, right.b -> b]
"""


def test_two_nodes_naming_one_checkpoint_two_ways_load_it_once(fresh_cache, loads):
    flow = load_text(TWO_NODES.replace("PATH", str(DEFAULT_MODEL_DIR)))
    tracer = MemoryTracer()
    result = Executor(flow, tracer=tracer).run({"topic": "hi"})
    assert result.status == "ok", result.error
    spans = tracer.by_name("workbench.model.load")
    assert sorted(s.attributes["workbench.model.node"] for s in spans) == ["left", "right"]
    assert sorted(s.attributes["workbench.model.cached"] for s in spans) == [False, True]
    assert loads == [DEFAULT_MODEL_DIR.resolve()]


def test_threads_asking_for_one_model_at_once_share_one_load(fresh_cache, loads, checkpoints):
    path = checkpoints["llama"].path
    specs = [{"local": str(path)}, {"local": {"path": str(path), "dtype": "float32"}}] * 3
    start = threading.Barrier(len(specs))
    found: list = [None] * len(specs)

    def ask(i: int) -> None:
        start.wait()
        found[i] = load_model(specs[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [path.resolve()]
    assert len({id(f.model) for f in found}) == 1
    assert sorted(f.cached for f in found) == [False] + [True] * (len(specs) - 1)
    # another dtype is another model
    half = resolve_model({"local": {"path": str(path), "dtype": "bfloat16"}})
    assert half is not found[0].model and len(loads) == 2


def test_meta_device_loading_gives_the_same_logits_as_initialise_then_copy():
    config = load_config(DEFAULT_MODEL_DIR)
    weights = load_weights(DEFAULT_MODEL_DIR, config, torch.float32, torch.device("cpu"))
    torch.manual_seed(0)
    reference = Transformer(config)  # built with real tensors on the CPU, then overwritten
    reference.load_state_dict(fuse_checkpoint(config, weights), strict=True)
    if config.tie_word_embeddings:
        reference.lm_head.weight = reference.embed_tokens.weight
    reference.eval()
    model = LocalModel.from_pretrained(DEFAULT_MODEL_DIR).transformer
    tokens = torch.randint(0, config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model(tokens), reference(tokens))
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def test_loading_the_model_never_imports_torch_dynamo():
    # nn.Embedding's random init on the meta device imports torch._dynamo (about 2 s on a small
    # CPU) although the checkpoint overwrites it: loading must not run that init at all.
    code = (
        "import sys\n"
        "from workbench.models.registry import resolve_model\n"
        "resolve_model('default')\n"
        "assert 'torch' in sys.modules\n"
        "print(sorted(m for m in ('torch._dynamo', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # nor the openai backend's HTTP client


def test_an_openai_spec_does_not_import_torch():
    code = (
        "import sys\n"
        "from workbench.models.registry import resolve_model\n"
        "resolve_model({'openai': {'base_url': 'http://127.0.0.1:9', 'model': 'm'}})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture
def llama_copy(checkpoints, tmp_path) -> Path:
    target = tmp_path / "llama"
    shutil.copytree(checkpoints["llama"].path, target)
    return target


def rewrite(path: Path, edit) -> None:
    tensors = load_file(path / "model.safetensors")
    edit(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def test_a_missing_tensor_is_named(llama_copy):
    rewrite(llama_copy, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ModelLoadError, match=r"'model\.layers\.1\.mlp\.up_proj\.weight' is missing"):
        LocalModel.from_pretrained(llama_copy)


def test_an_extra_tensor_is_named_not_dropped(llama_copy):
    def add(tensors):
        tensors["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)
        tensors["model.layers.2.mlp.down_proj.weight"] = torch.zeros(64, 128)

    rewrite(llama_copy, add)
    with pytest.raises(ModelLoadError) as info:
        LocalModel.from_pretrained(llama_copy)
    message = str(info.value)
    assert "2 tensor(s) that config.json has no place for" in message
    assert "'model.layers.0.self_attn.q_proj.bias'" in message
    assert "'model.layers.2.mlp.down_proj.weight'" in message


def test_rotary_tables_of_older_checkpoints_are_ignored(llama_copy, checkpoints):
    rewrite(llama_copy, lambda t: t.update({"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8)}))
    model = LocalModel.from_pretrained(llama_copy).transformer
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    reference = LocalModel.from_pretrained(checkpoints["llama"].path).transformer
    tokens = torch.arange(12)[None]
    with torch.inference_mode():
        assert torch.equal(model(tokens), reference(tokens))


def test_a_tied_head_saved_anyway_is_ignored(checkpoints, tmp_path):
    path = tmp_path / "smollm2"
    shutil.copytree(checkpoints["smollm2"].path, path)
    rewrite(path, lambda t: t.update({"lm_head.weight": torch.zeros_like(t["model.embed_tokens.weight"])}))
    model = LocalModel.from_pretrained(path).transformer
    assert model.lm_head.weight is model.embed_tokens.weight
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def test_a_failed_load_is_an_error_span_and_a_clear_run_error(fresh_cache, tmp_path):
    flow = load_text(TWO_NODES.replace("PATH", str(tmp_path / "nowhere")))
    tracer = MemoryTracer()
    result = Executor(flow, tracer=tracer).run({"topic": "hi"})
    assert result.status == "failed" and isinstance(result.error, ModelUnavailable)
    assert "node 'right'" in str(result.error) and "nowhere is not a directory" in str(result.error)
    spans = {s.attributes["workbench.model.node"]: s for s in tracer.by_name("workbench.model.load")}
    assert spans["right"].status == "ERROR" and "not a directory" in spans["right"].status_message


def test_unknown_local_options_are_refused(checkpoints):
    with pytest.raises(UsageError, match=r"does not take dtpye; it takes path, dtype, device"):
        resolve_model({"local": {"path": str(checkpoints["llama"].path), "dtpye": "float32"}})
