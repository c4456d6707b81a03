"""``LocalModel``: the ``Model`` protocol over the in-process Llama-family runtime.

    model = LocalModel.from_pretrained("path/to/checkpoint")          # or resolve_model("default")
    [gen] = await model.generate([GenerationRequest(prompt="Hi", max_tokens=16)])
    async for event in model.stream(GenerationRequest(messages=[{"role": "user", "content": "Hi"}])):
        print(event.text, end="")

Concurrency: every ``generate``/``stream`` call puts its requests on one queue; a single
worker thread takes whatever is waiting (up to ``max_batch`` requests), runs it as one batch,
and hands results back to each caller's event loop as each request finishes. So concurrent
callers batch together, the event loop never blocks on torch, and the model is only ever
touched by one thread. By default requests that arrive while a batch runs wait for the next
one (static batching); with ``continuous_batching=True`` they join the running batch as rows
free up (or while it has fewer than ``max_batch`` rows), prefilled on arrival.

Importing this module registers two backends for ``model:`` specs: ``local`` (value: a
checkpoint directory, or ``{path, dtype, device, ...}``) and ``default`` (the built-in tiny
checkpoint in ``workbench/models/tiny/``). Both name their model by the resolved directory,
dtype and device, so the registry loads each checkpoint once per process whichever spec
names it. ``from_pretrained`` itself always loads a new model.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelUnavailable, UsageError
from workbench.models.base import Constraint, Generation, GenerationRequest, TokenEvent
from workbench.models.config import ModelConfig, ModelLoadError, load_config
from workbench.models.engine import Engine, Job
from workbench.models.json_schema import JsonSchemaConstraint, json_constraint_available
from workbench.models.llama import Transformer, from_checkpoint
from workbench.models.registry import register_backend
from workbench.models.tokenizer import Tokenizer
from workbench.models.tool_calls import ToolCallConstraint, parse_tool_calls, tool_choice
from workbench.models.weights import load_weights, weight_files

__all__ = ["DEFAULT_MODEL_DIR", "LocalModel", "resolve_device", "resolve_dtype"]

DEFAULT_MODEL_DIR = Path(__file__).parent / "tiny"

_DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def resolve_dtype(dtype: str | torch.dtype | None, config: ModelConfig, device: torch.device) -> torch.dtype:
    """The compute dtype: explicit, else the checkpoint's on CUDA and float32 on CPU (fast there)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPE_NAMES.values():
            raise UsageError(f"dtype {dtype} is not supported; use float32, bfloat16 or float16")
        return dtype
    if dtype is None or dtype == "auto":
        return config.checkpoint_dtype if device.type == "cuda" else torch.float32
    if dtype not in _DTYPE_NAMES:
        raise UsageError(f"dtype {dtype!r} is not one of {', '.join(sorted(_DTYPE_NAMES))}")
    return _DTYPE_NAMES[dtype]


@dataclass
class _Pending:
    """A job plus where its result goes (a future, or a stream's event queue)."""

    job: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future | None = None
    events: asyncio.Queue | None = None
    delivered: bool = False

    def done(self, job: Job) -> None:
        """The job ended (called on the worker thread): hand its result or error to the caller."""
        if not self.delivered:
            self.delivered = True
            if job.error is not None:
                self.fail(job.error)
            else:
                self.succeed(job)

    def succeed(self, job: Job) -> None:
        if self.future is not None:  # a stream already has its final event
            _deliver(self.loop, _set_result, self.future, job.result())

    def fail(self, exc: BaseException) -> None:
        self.delivered = True
        if self.future is not None:
            _deliver(self.loop, _set_exception, self.future, exc)
        if self.events is not None:
            _deliver(self.loop, self.events.put_nowait, exc)


def _deliver(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    # a closed loop (RuntimeError) means nobody is waiting any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class LocalModel:
    """A Hugging Face-format Llama-family checkpoint running in this process."""

    supports_decode_rails = True  # GenerationRequest.decode_rails become token masks
    supports_tools = True  # GenerationRequest.tools: calls written under each tool's schema

    def __init__(self, transformer: Transformer, tokenizer: Tokenizer, *, name: str, max_batch: int = 16,
                 compile: bool = False, continuous_batching: bool = False,
                 checkpoint: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.checkpoint = checkpoint  # the directory the weights came from, when known
        self.load_seconds = 0.0  # set by from_pretrained
        self.continuous_batching = continuous_batching
        self.tokenizer = tokenizer
        self.transformer = transformer
        self.config = transformer.config
        self.max_batch = max_batch
        self.engine = Engine(transformer, tokenizer, compile=compile)
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._deferred: collections.deque[_Pending] = collections.deque()  # too long for the last batch
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one batch at a time on the model

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        *,
        name: str | None = None,
        compile: bool | None = None,
        max_batch: int = 16,
        continuous_batching: bool = False,
    ) -> LocalModel:
        """Load a checkpoint directory (config.json, safetensors, tokenizer.json).

        ``dtype``: float32/bfloat16/float16 (default: float32 on CPU, the checkpoint's on CUDA).
        ``device``: default CUDA when available. ``compile``: torch.compile the decode step with
        CUDA graphs (default on CUDA only; it costs a compile per batch size and helps small models).
        ``continuous_batching``: let requests join a running batch (see the module docstring).
        """
        start = time.perf_counter()
        directory = _checkpoint_dir(path)
        config = load_config(directory)
        dev = resolve_device(device)
        compute = resolve_dtype(dtype, config, dev)
        tokenizer = Tokenizer.from_directory(directory, eos_token_ids=config.eos_token_ids)
        transformer = from_checkpoint(config, load_weights(directory, config, compute, dev))
        use_compile = dev.type == "cuda" if compile is None else compile
        name = name or directory.name
        model = cls(transformer, tokenizer, name=name, max_batch=max_batch, compile=use_compile,
                    continuous_batching=continuous_batching, checkpoint=directory)  # fmt: skip
        model.load_seconds = time.perf_counter() - start
        return model

    def describe(self) -> dict[str, Any]:
        """Which weights these are, as ``workbench.model.*`` span attributes (the load span's)."""
        weight = self.transformer.embed_tokens.weight
        return {
            "workbench.model.name": self.name,
            "workbench.model.path": str(self.checkpoint) if self.checkpoint else None,
            "workbench.model.params": sum(p.numel() for p in self.transformer.parameters()),
            "workbench.model.dtype": str(weight.dtype).removeprefix("torch."),
            "workbench.model.device": str(weight.device),
            "workbench.model.load_seconds": self.load_seconds,
        }

    # ---- the Model protocol -------------------------------------------------------------
    def _job(self, request: GenerationRequest) -> Job:
        """A job for ``request``; a ``response_schema`` or ``tools`` without a constraint become one.

        The schema is honoured as a token constraint (JSON valid for it, by construction)
        when llguidance is installed; otherwise the model is left to follow the prompt.
        Offered tools (unless ``tool_choice`` is ``none``) constrain the answer to text or
        well-formed calls (``workbench.models.tool_calls``).
        """
        choice = tool_choice(request.tools, request.tool_choice, request.parallel_tool_calls)
        if choice.calls_allowed and request.constraint is None and json_constraint_available():
            calls = ToolCallConstraint(choice, self.tokenizer, request.response_schema, request.tool_rails)
            return Job(request=dataclasses.replace(request, constraint=calls),
                       prompt_ids=self.engine.encode_request(request), on_event=request.on_token)  # fmt: skip
        if request.response_schema is not None and request.constraint is None and json_constraint_available():
            constraint: Constraint = JsonSchemaConstraint(request.response_schema, self.tokenizer)
            if request.decode_rails is not None:  # the rails narrow the schema's mask
                constraint = request.decode_rails.constrain(constraint)
            request = dataclasses.replace(request, constraint=constraint)
        # on_token hears the engine's own per-token events, on the worker thread
        return Job(request=request, prompt_ids=self.engine.encode_request(request), on_event=request.on_token)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate for every request; concurrent calls share batches. Bad requests raise before any work.

        A request's ``on_token`` is called on the model's worker thread as each token decodes.
        """
        loop = asyncio.get_running_loop()
        jobs = [self._job(r) for r in requests]
        futures = [loop.create_future() for _ in jobs]
        for job, future in zip(jobs, futures):
            self._submit(_Pending(job, loop, future=future))
        try:
            results = list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            for job in jobs:
                job.cancelled = True
            raise
        return [_with_calls(r, g) for r, g in zip(requests, results, strict=True)]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Yield ``TokenEvent``s as tokens decode; the last one carries ``finish_reason``.

        A finish without a token of its own (EOS is not text; ``max_tokens=0``) has ``token_id``
        of the EOS token or -1. Leaving the loop early cancels the request.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job = self._job(request)
        listener = job.on_event  # the request's own on_token hears the events too

        def on_event(event: TokenEvent) -> None:
            if listener is not None:
                listener(event)
            _deliver(loop, events.put_nowait, event)

        job.on_event = on_event
        self._submit(_Pending(job, loop, events=events))
        try:
            while True:
                item = await events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            job.cancelled = True

    def generate_sync(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Blocking generate in the calling thread, as one batch (scripts, benchmarks)."""
        jobs = [self._job(r) for r in requests]
        with self._run_lock:  # keeps the worker out while we use the model
            results = self.engine.run(jobs)
        for job in jobs:
            if job.error is not None:
                raise job.error
        return [_with_calls(r, g) for r, g in zip(requests, results, strict=True)]

    # ---- the worker ---------------------------------------------------------------------
    def _submit(self, pending: _Pending) -> None:
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                thread_name = f"workbench-model-{self.name}"
                self._worker = threading.Thread(target=self._work, name=thread_name, daemon=True)
                self._worker.start()
        self._queue.put(pending)

    def _take(self, block: bool) -> _Pending | None:
        """The next live request: deferred ones first, then the queue (waiting if ``block``)."""
        while True:
            if self._deferred:
                pending = self._deferred.popleft()
            else:
                try:
                    pending = self._queue.get(block=block)
                except queue.Empty:
                    return None
            if not pending.job.cancelled:
                pending.job.on_done = pending.done
                return pending

    def _work(self) -> None:
        """Run batches forever; requests that arrive while one runs join it as rows free up."""
        while True:
            first = self._take(block=True)
            assert first is not None  # a blocking take waits for one
            batch = [first]
            while len(batch) < self.max_batch and (pending := self._take(block=False)) is not None:
                batch.append(pending)
            admitted = list(batch)

            def admit(free: int, room: int, admitted: list[_Pending] = admitted) -> list[Job]:
                # continuous batching: waiting requests join the running batch when they fit
                jobs: list[Job] = []
                while len(jobs) < free and (pending := self._take(block=False)) is not None:
                    if self.engine.needs(pending.job) > room:
                        self._deferred.append(pending)  # its own, larger, batch comes next
                        break
                    admitted.append(pending)
                    jobs.append(pending.job)
                return jobs

            try:
                with self._run_lock:
                    if self.continuous_batching:
                        self.engine.run([p.job for p in batch], admit=admit, capacity=self.max_batch)
                    else:
                        self.engine.run([p.job for p in batch])
            except BaseException as exc:  # e.g. CUDA out of memory: fail this batch, keep serving
                if isinstance(exc, torch.OutOfMemoryError):
                    exc = ModelUnavailable(f"out of memory running a batch of {len(admitted)}: {exc}")
                for p in admitted:
                    if not p.delivered:
                        p.fail(exc)


def _with_calls(request: GenerationRequest, generation: Generation) -> Generation:
    """The generation with the calls its text holds moved to ``tool_calls`` (when tools were offered);
    an answer cut by ``max_tokens`` keeps its finished calls and the finish reason ``length``."""
    if not request.tools or request.tool_choice == "none":
        return generation
    text, calls = parse_tool_calls(generation.text)
    if not calls:
        return generation
    finish = "length" if generation.finish_reason == "length" else "tool_calls"
    return dataclasses.replace(generation, text=text, tool_calls=calls, finish_reason=finish)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to load on: as given (CUDA checked to be there), else CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {dev} was asked for but CUDA is not available here")
    return dev


def _checkpoint_dir(path: str | Path) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is not a directory: {{local: PATH}} names a checkpoint folder")
    return directory


_LOCAL_OPTIONS = ("dtype", "device", "name", "compile", "max_batch", "continuous_batching")


def _local_options(value: Any) -> tuple[Path, dict[str, Any]]:
    """``{local: PATH}`` or ``{local: {path: PATH, dtype: ..., device: ...}}`` as (directory, options)."""
    if isinstance(value, Mapping):
        options = dict(value)
        if "path" not in options:
            raise UsageError(f"{{local: ...}} needs a path, got {value!r}")
        unknown = sorted(set(options) - {"path", *_LOCAL_OPTIONS})
        if unknown:
            raise UsageError(
                f"{{local: ...}} does not take {', '.join(unknown)}; "
                f"it takes path, {', '.join(_LOCAL_OPTIONS)}"
            )
        return _checkpoint_dir(options.pop("path")), options
    if not isinstance(value, (str, Path)):
        raise UsageError(f"{{local: PATH}} needs a checkpoint directory path, got {value!r}")
    return _checkpoint_dir(value), {}


def _cache_key(directory: Path, options: Mapping[str, Any]) -> Hashable:
    """What names the model ``directory`` and ``options`` load: path, dtype, device, engine options."""
    device = resolve_device(options.get("device"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = resolve_dtype(options.get("dtype"), load_config(directory), device)
    compile = options.get("compile")
    return (
        "local",
        str(directory.resolve()),
        str(dtype),
        str(device),
        options.get("name") or _default_name(directory),
        device.type == "cuda" if compile is None else bool(compile),
        options.get("max_batch", 16),
        bool(options.get("continuous_batching", False)),
    )


def _default_name(directory: Path) -> str:
    """``default`` for the built-in checkpoint however it is named, else the directory's name."""
    return "default" if directory.resolve() == DEFAULT_MODEL_DIR.resolve() else directory.name


def _load_local(value: Any) -> LocalModel:
    """Loader for ``{local: PATH}`` or ``{local: {path: PATH, dtype: ..., device: ...}}``."""
    directory, options = _local_options(value)
    options.setdefault("name", _default_name(directory))
    return LocalModel.from_pretrained(directory, **options)


def _local_key(value: Any) -> Hashable:
    return _cache_key(*_local_options(value))


def _default_dir() -> Path:
    """The tiny checkpoint shipped in the package, or a clear error when it is not there."""
    try:
        weight_files(DEFAULT_MODEL_DIR)
    except ModelLoadError:
        raise ModelUnavailable(
            f"the built-in tiny model is not in this installation ({DEFAULT_MODEL_DIR} has no weights); "
            "train it with the repository's tiny-model training script, or use {local: PATH} / {openai: ...}"
        ) from None
    return DEFAULT_MODEL_DIR


def _load_default(_value: Any = None) -> LocalModel:
    """Loader for ``model: default``: the tiny checkpoint shipped in the package."""
    return LocalModel.from_pretrained(_default_dir(), name="default")


def _default_key(_value: Any = None) -> Hashable:
    return _cache_key(_default_dir(), {})


register_backend("local", _load_local, _local_key)
register_backend("default", _load_default, _default_key)
