"""The blocking generation loop: one static batch from prefill to the last finished sequence.

Per step, for the whole batch at once: build the constraint bitmask (rows without a
constraint allow everything), sample with ``workbench.kernels.sample_tokens`` (per-row
temperature / top-k / top-p / seed; the step number makes a seeded stream reproducible),
then per sequence: advance its constraint, check EOS, detokenize incrementally, look for stop
strings, and emit a ``TokenEvent``. Finished rows stay in the batch (frozen at their last
position) until every row is done: static shapes, no cache shuffling.

Finish reasons: ``constraint`` (the constraint's state reports finished after the token, or
allows no token at all), ``stop`` (an EOS token, or a stop string: the text ends before it),
``length`` (``max_tokens`` reached, or the context window is full).

A constraint that raises (in ``start``, ``allowed_tokens``, ``advance`` or ``is_finished``) or
returns a malformed mask fails only its own sequence: the job gets ``error`` set and finish
reason ``error``, and the rest of the batch carries on.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench.errors import UsageError
from workbench.kernels import apply_token_bitmask, sample_tokens
from workbench.models.base import ConstraintState, Generation, GenerationRequest, TokenEvent
from workbench.models.config import ContextLengthError
from workbench.models.llama import Transformer, decode_one_token, prefill
from workbench.models.tokenizer import Tokenizer

__all__ = ["Engine", "Job"]

_CACHE_ROUND = 64  # cache lengths are rounded up so repeated calls reuse one allocation
_COMPILED_CACHE = 4096  # a compiled decode step sees one cache length (up to this) so it compiles once


class IncrementalText:
    """Detokenize one token at a time without re-decoding the whole sequence.

    Decoding a token alone loses context (leading-space markers, multi-byte characters split
    over tokens), so each step decodes a short window that starts a few tokens back and keeps
    only the text past what that window's prefix already produced.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0

    def add(self, token_id: int) -> str:
        """Append one token; the new text it completes ('' while a character is incomplete)."""
        self.ids.append(token_id)
        prefix = self.tokenizer.decode(self.ids[self.prefix_offset : self.read_offset])
        full = self.tokenizer.decode(self.ids[self.prefix_offset :])
        if full.endswith("\ufffd") or len(full) <= len(prefix):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return full[len(prefix) :]


@dataclass
class Job:
    """One request inside the engine: its tokens, its listener, and what it produced so far."""

    request: GenerationRequest
    prompt_ids: list[int]
    on_event: Callable[[TokenEvent], None] | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    emitted: int = 0  # characters of text already sent in events
    sampled: int = 0
    finish_reason: str | None = None
    cancelled: bool = False  # set by the caller who stopped listening; the row stops quietly
    error: BaseException | None = None  # what its constraint raised; the job failed alone
    state: ConstraintState | None = None
    detok: IncrementalText | None = None

    def result(self) -> Generation:
        """The finished ``Generation``."""
        return Generation(
            text=self.text,
            finish_reason=self.finish_reason or "length",
            input_tokens=len(self.prompt_ids),
            output_tokens=self.sampled,
            token_ids=list(self.token_ids),
            logprobs=list(self.logprobs) if self.request.logprobs else None,
        )


def _check_sampling(request: GenerationRequest) -> None:
    """Refuse settings the sampler cannot honour, before they reach a shared batch."""
    r = request
    if not isinstance(r.max_tokens, int) or r.max_tokens < 0:
        raise UsageError(f"max_tokens must be an int >= 0, got {r.max_tokens!r}")
    if not r.temperature >= 0:  # also catches NaN
        raise UsageError(f"temperature must be >= 0, got {r.temperature!r}")
    if not 0 < r.top_p <= 1:
        raise UsageError(f"top_p must be in (0, 1], got {r.top_p!r}")
    if not isinstance(r.top_k, int) or r.top_k < 0:
        raise UsageError(f"top_k must be an int >= 0 (0: off), got {r.top_k!r}")
    if r.seed is not None and not isinstance(r.seed, int):
        raise UsageError(f"seed must be an int or None, got {r.seed!r}")
    if not all(isinstance(s, str) for s in _stops(r)):
        raise UsageError(f"stop must be a string or a list of strings, got {r.stop!r}")


def _stops(request: GenerationRequest) -> tuple[str, ...]:
    """The request's stop strings as a tuple (a bare string is one stop string, not characters)."""
    stop = request.stop
    return (stop,) if isinstance(stop, str) else tuple(stop or ())


def _holdback(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


class Engine:
    """Runs batches of ``Job``s on one ``Transformer``; not thread-safe (the caller serialises)."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, *, compile: bool = False) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.device = model.embed_tokens.weight.device
        self.eos = set(tokenizer.eos_token_ids) | set(self.config.eos_token_ids)
        self.words = (self.config.vocab_size + 31) // 32  # int32 words of a token bitmask
        self._decode = decode_one_token
        if compile:
            # On CUDA, CUDA graphs (reduce-overhead): a small model's decode step is launch-bound.
            # On CPU, inductor's fused C++ removes the per-op dispatch that dominates small models.
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            # fullgraph off: a Triton launcher dynamo cannot trace costs a graph break, not the compile
            self._decode = torch.compile(decode_one_token, mode=mode, fullgraph=False, dynamic=False)
        self.compiled = compile

    # ---- preparing requests -------------------------------------------------------------
    def encode_request(self, request: GenerationRequest) -> list[int]:
        """Prompt token ids of a request; raises ``ContextLengthError`` if they do not fit."""
        if request.messages is not None:
            text = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        elif request.prompt is not None:
            ids = self.tokenizer.encode(request.prompt, add_special_tokens=True)
        else:
            raise UsageError("a GenerationRequest needs a prompt or messages")
        if not ids:
            bos = self.config.bos_token_id
            if bos is None:
                raise UsageError("the prompt is empty and the model has no BOS token to start from")
            ids = [bos]
        context = self.config.context_length
        if len(ids) >= context:
            raise ContextLengthError(
                f"the prompt is {len(ids)} tokens but the model's context holds {context} "
                "(prompt plus at least one generated token): shorten the prompt"
            )
        _check_sampling(request)
        return ids

    # ---- the loop -----------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, jobs: list[Job]) -> list[Generation]:
        """Generate for every job in one batch; events go to each job's ``on_event`` as tokens come."""
        bsz = len(jobs)
        context = self.config.context_length
        lengths = [len(j.prompt_ids) for j in jobs]
        budgets = [min(j.request.max_tokens, context - n) for j, n in zip(jobs, lengths)]
        for job in jobs:
            job.detok = IncrementalText(self.tokenizer)
            if job.request.constraint is not None:
                try:
                    job.state = job.request.constraint.start(self.tokenizer)
                except Exception as exc:
                    self._fail(job, exc)
        for job, budget in zip(jobs, budgets):
            if job.finish_reason:
                continue
            if budget == 0:
                self._finish(job, "length", None)
            elif job.state is not None and self._constraint_done(job):
                self._finish(job, "constraint", None)
        if all(j.finish_reason for j in jobs):
            return [j.result() for j in jobs]

        total = max(n + b for n, b in zip(lengths, budgets))
        if self.compiled:  # one cache shape for every call: a new shape would mean a new compile
            total = max(total, min(context, _COMPILED_CACHE))
        self.model.setup_cache(bsz, -(-total // _CACHE_ROUND) * _CACHE_ROUND)
        width = max(lengths)
        block = torch.zeros(bsz, width, dtype=torch.long)
        for row, job in enumerate(jobs):
            block[row, : lengths[row]] = torch.tensor(job.prompt_ids)
        dev = self.device
        positions = torch.tensor(lengths, device=dev)  # [B] slot of the next token
        params = self._sampling_params(jobs)
        want_logprobs = any(j.request.logprobs for j in jobs)
        all_greedy = all(j.request.temperature <= 0 for j in jobs)

        logits = prefill(self.model, block.to(dev), positions)  # [B,V]
        step = 0
        while True:
            tokens = self._sample(logits, self._bitmask(jobs), step, params, all_greedy)  # [B]
            chosen = tokens.tolist()
            for job in jobs:
                if job.cancelled and job.finish_reason is None:
                    job.finish_reason = "cancelled"
            picked = None
            if want_logprobs:
                picked = torch.log_softmax(logits.float(), -1).gather(1, tokens[:, None])[:, 0].tolist()
            for row, job in enumerate(jobs):
                if job.finish_reason is None:
                    lp = picked[row] if picked is not None else None
                    self._accept(job, chosen[row], lp, budgets[row])
            if all(j.finish_reason for j in jobs):
                break
            logits = self._step(tokens, positions)
            if any(j.finish_reason for j in jobs):
                # finished rows stay where they are: they rewrite one slot instead of running off the cache
                active = torch.tensor([j.finish_reason is None for j in jobs], device=dev)
                positions = torch.where(active, positions + 1, positions)
            else:
                positions = positions + 1
            step += 1
        return [j.result() for j in jobs]

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        try:
            # clone: CUDA graphs reuse their output buffers
            return self._decode(self.model, tokens, positions, self.compiled).clone()
        except Exception as exc:  # compile failures surface on first call; eager still works
            if self._decode is decode_one_token:
                raise
            warnings.warn(f"torch.compile of decode failed, running eagerly: {exc}", stacklevel=2)
            self._decode, self.compiled = decode_one_token, False
            return decode_one_token(self.model, tokens, positions)

    @staticmethod
    def _sample(logits, bitmask, step: int, params: dict[str, torch.Tensor], all_greedy: bool):
        """Next tokens [B] from logits [B,V]."""
        if all_greedy:
            # the same answer as sample_tokens at temperature 0, minus its top-k/top-p bookkeeping
            if bitmask is not None:
                logits = apply_token_bitmask(logits, bitmask)
            return logits.argmax(-1)
        return sample_tokens(logits, bitmask=bitmask, step=step, **params)

    def _sampling_params(self, jobs: list[Job]) -> dict[str, torch.Tensor]:
        dev = self.device
        # any Python int is a seed; the sampler takes int64, so fold it into [0, 2**63)
        seeds = [random.randrange(2**62) if j.request.seed is None else j.request.seed % 2**63 for j in jobs]
        return {
            "temperature": torch.tensor([float(j.request.temperature) for j in jobs], device=dev),
            "top_k": torch.tensor([int(j.request.top_k) for j in jobs], dtype=torch.int32, device=dev),
            "top_p": torch.tensor([float(j.request.top_p) for j in jobs], device=dev),
            "seed": torch.tensor(seeds, dtype=torch.int64, device=dev),
        }

    def _bitmask(self, jobs: list[Job]) -> torch.Tensor | None:
        """[B, ceil(V/32)] int32 allowed-token bits, or None when no row is constrained."""
        rows = []
        for job in jobs:
            try:
                rows.append(job.state.allowed_tokens() if job.state and job.finish_reason is None else None)
            except Exception as exc:
                self._fail(job, exc)
                rows.append(None)
        if all(r is None for r in rows):
            return None
        mask = np.full((len(jobs), self.words), -1, dtype=np.int32)  # -1: all 32 bits set
        for i, allowed in enumerate(rows):
            if allowed is None:
                continue
            if isinstance(allowed, torch.Tensor):
                allowed = allowed.detach().cpu().numpy()
            try:  # int64 first: a uint32 word with its top bit set must wrap, not overflow
                words = np.asarray(allowed, dtype=np.int64).astype(np.int32).reshape(-1)[: self.words]
            except (TypeError, ValueError) as exc:
                self._fail(jobs[i], ValueError(f"constraint returned a malformed token mask: {exc}"))
                continue
            mask[i] = 0  # tokens past the constraint's vocabulary (padding rows of the head) stay banned
            mask[i, : words.size] = words
            if not mask[i].any():
                # nothing allowed: finish before sampling, and sample this row unconstrained (ignored)
                self._finish(jobs[i], "constraint", None)
                mask[i] = -1
        return torch.from_numpy(mask).to(self.device)

    def _accept(self, job: Job, token: int, logprob: float | None, budget: int) -> None:
        job.sampled += 1
        if job.state is not None:
            try:
                job.state.advance(token)
            except Exception as exc:
                self._fail(job, exc)
                return
            done = self._constraint_done(job)
            if job.error is not None:
                return
            if done:
                if token not in self.eos:
                    self._add_token(job, token, logprob)
                self._finish(job, "constraint", token, logprob)
                return
        # EOS is not text; any other token is, and may complete a stop string
        if token in self.eos or self._add_token(job, token, logprob):
            self._finish(job, "stop", token, logprob)
        elif job.sampled >= budget:
            self._finish(job, "length", token, logprob)
        else:
            self._emit(job, token, None, logprob)

    def _add_token(self, job: Job, token: int, logprob: float | None) -> bool:
        """Record a token and its text; True when the text now contains a stop string."""
        job.token_ids.append(token)
        if logprob is not None:
            job.logprobs.append(logprob)
        piece = job.detok.add(token)
        if not piece:
            return False
        stops = _stops(job.request)
        start = max(0, len(job.text) - max((len(s) for s in stops), default=0))
        job.text += piece
        hits = [i for s in stops if s and (i := job.text.find(s, start)) >= 0]
        if hits:
            job.text = job.text[: min(hits)]
            return True
        return False

    def _emit(self, job: Job, token: int, finish: str | None, logprob: float | None = None) -> None:
        end = len(job.text) if finish else len(job.text) - _holdback(job.text, _stops(job.request))
        piece = job.text[job.emitted : end]
        job.emitted = max(job.emitted, end)
        if job.on_event is not None:
            job.on_event(TokenEvent(token_id=token, text=piece, logprob=logprob, finish_reason=finish))

    def _constraint_done(self, job: Job) -> bool:
        """``job.state.is_finished()``; a raising constraint fails the job (and counts as done)."""
        try:
            return bool(job.state.is_finished())
        except Exception as exc:
            self._fail(job, exc)
            return False

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.error, job.finish_reason = exc, "error"

    def _finish(self, job: Job, reason: str, token: int | None, logprob: float | None = None) -> None:
        job.finish_reason = reason
        self._emit(job, -1 if token is None else token, reason, logprob)
