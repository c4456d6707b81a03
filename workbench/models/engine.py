"""The blocking generation loop: one batch from prefill to the last finished sequence.

Jobs that arrive while the batch runs can join it (continuous batching, see ``Engine.run``):
each is prefilled alone into a free cache row and decodes with the others from then on.

Per step, for the whole batch at once: build the constraint bitmask (rows without a
constraint allow everything), sample with ``workbench.kernels.sample_tokens`` (per-row
temperature / top-k / top-p / seed; the step number makes a seeded stream reproducible),
then per sequence: advance its constraint, check EOS, detokenize incrementally, look for stop
strings, and emit a ``TokenEvent``. Finished rows stay in the batch (frozen at their last
position) until every row is done or a joining job takes the row: no cache shuffling.

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
from typing import TypedDict

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
_ADMIT_CACHE = 1024  # with continuous batching, cache room for requests that join later
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


class _SamplingParams(TypedDict):
    """Each row's sampling settings, as ``sample_tokens`` takes them."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    seed: torch.Tensor


@dataclass
class Job:
    """One request inside the engine: its tokens, its listener, and what it produced so far."""

    request: GenerationRequest
    prompt_ids: list[int]
    on_event: Callable[[TokenEvent], None] | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    step_top: list[tuple[int, float]] = field(default_factory=list)  # this step's, kept with its token
    text: str = ""
    emitted: int = 0  # characters of text already sent in events
    sampled: int = 0
    finish_reason: str | None = None
    cancelled: bool = False  # set by the caller who stopped listening; the row stops quietly
    error: BaseException | None = None  # what its constraint raised; the job failed alone
    on_done: Callable[[Job], None] | None = None  # told once, when the job has finished or failed
    state: ConstraintState | None = None
    detok: IncrementalText | None = None
    budget: int = 0  # tokens it may still sample: max_tokens capped by the context
    seed: int = 0  # the sampler's seed (drawn once when the request has none)

    def result(self) -> Generation:
        """The finished ``Generation``."""
        return Generation(
            text=self.text,
            finish_reason=self.finish_reason or "length",
            input_tokens=len(self.prompt_ids),
            output_tokens=self.sampled,
            token_ids=list(self.token_ids),
            logprobs=list(self.logprobs) if self.request.logprobs else None,
            top_logprobs=list(self.top_logprobs) if self.request.top_logprobs else None,
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
    if not isinstance(r.top_logprobs, int) or not 0 <= r.top_logprobs <= 20:
        raise UsageError(f"top_logprobs must be an int from 0 to 20, got {r.top_logprobs!r}")


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
            text = self.tokenizer.apply_chat_template(
                request.messages, add_generation_prompt=True, tools=request.tools
            )
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
    def needs(self, job: Job) -> int:
        """Cache positions a job occupies at most: prompt plus its token budget."""
        n = len(job.prompt_ids)
        return n + min(job.request.max_tokens, self.config.context_length - n)

    def _begin(self, job: Job) -> None:
        """Set a job up to join a batch (and finish it at once if it may not sample at all)."""
        n = len(job.prompt_ids)
        job.budget = min(job.request.max_tokens, self.config.context_length - n)
        job.seed = random.randrange(2**62) if job.request.seed is None else job.request.seed % 2**63
        job.detok = IncrementalText(self.tokenizer)
        if job.request.constraint is not None:
            try:
                job.state = job.request.constraint.start(self.tokenizer)
            except Exception as exc:
                self._fail(job, exc)
                return
        if job.budget == 0:
            self._finish(job, "length", None)
        elif job.state is not None and self._constraint_done(job, job.state):
            self._finish(job, "constraint", None)

    @torch.inference_mode()
    def run(
        self,
        jobs: list[Job],
        admit: Callable[[int, int], list[Job]] | None = None,
        capacity: int | None = None,
    ) -> list[Generation]:
        """Generate for every job in one batch; events go to each job's ``on_event`` as tokens come.

        Continuous batching: with ``admit``, before every step the engine asks ``admit(free,
        room)`` for up to ``free`` more jobs (each needing at most ``room`` cache positions,
        see ``needs``); they are prefilled into rows whose job has finished, or new rows up to
        ``capacity``, and decode with the rest from then on. Each job's ``on_done`` hears when it
        ends; the return value covers ``jobs`` only.
        """
        rows = list(jobs)
        for job in rows:
            self._begin(job)
        if all(j.finish_reason for j in rows):
            return [j.result() for j in jobs]
        capacity = max(capacity or len(rows), len(rows)) if admit is not None else len(rows)
        context = self.config.context_length
        total = max(self.needs(j) for j in rows)
        if admit is not None:  # room for requests that join later, not only for these
            total = max(total, min(context, _ADMIT_CACHE))
        if self.compiled:  # one cache shape for every call: a new shape would mean a new compile
            total = max(total, min(context, _COMPILED_CACHE))
        self.model.setup_cache(capacity, -(-total // _CACHE_ROUND) * _CACHE_ROUND)
        lengths = [len(j.prompt_ids) for j in rows]
        block = torch.zeros(len(rows), max(lengths), dtype=torch.long)
        for row, job in enumerate(rows):
            block[row, : lengths[row]] = torch.tensor(job.prompt_ids)
        dev = self.device
        positions = torch.tensor(lengths, device=dev)  # [B] slot of the next token
        starts = [0] * len(rows)  # step at which each row's sampling stream began
        params = self._sampling_params(rows)

        logits = prefill(self.model, block.to(dev), positions)  # [B,V]
        step = 0
        while True:
            if admit is not None:
                joined, logits, positions = self._admit(
                    rows, admit, capacity, logits, positions, starts, step
                )
                if joined:
                    params = self._sampling_params(rows)
            running = [j for j in rows if j.finish_reason is None]
            if not running:
                break
            greedy = all(j.request.temperature <= 0 for j in running)
            steps = [step - t for t in starts]  # tokens each row has sampled so far
            tokens = self._sample(logits, self._bitmask(rows), steps, params, greedy)  # [B]
            chosen = tokens.tolist()
            for job in running:
                if job.cancelled:
                    job.finish_reason = "cancelled"
            picked = None
            if any(j.request.logprobs or j.request.top_logprobs for j in running):
                logp = torch.log_softmax(logits.float(), -1)
                picked = logp.gather(1, tokens[:, None])[:, 0].tolist()
                self._top(rows, logp)
            for row, job in enumerate(rows):
                if job.finish_reason is None:
                    self._accept(job, chosen[row], picked[row] if picked is not None else None)
            if all(j.finish_reason for j in rows):
                if admit is None:
                    break
                continue  # no decode for a batch of finished rows: admit, or stop
            logits = self._step(tokens, positions)
            if any(j.finish_reason for j in rows):
                # finished rows stay where they are: they rewrite one slot instead of running off the cache
                active = torch.tensor([j.finish_reason is None for j in rows], device=dev)
                positions = torch.where(active, positions + 1, positions)
            else:
                positions = positions + 1
            step += 1
        return [j.result() for j in jobs]

    def _admit(
        self,
        rows: list[Job],
        admit: Callable[[int, int], list[Job]],
        capacity: int,
        logits: torch.Tensor,
        positions: torch.Tensor,
        starts: list[int],
        step: int,
    ) -> tuple[bool, torch.Tensor, torch.Tensor]:
        """Prefill jobs ``admit`` offers into free rows; (any joined, logits [B',V], positions [B'])."""
        free = [i for i, j in enumerate(rows) if j.finish_reason]
        offered = admit(len(free) + capacity - len(rows), self.model.cache_len)
        for job in offered:
            self._begin(job)
            if free:
                row = free.pop(0)
                rows[row] = job
                starts[row] = step
            else:  # a new row: the batch grows by one
                row = len(rows)
                rows.append(job)
                starts.append(step)
                logits = torch.cat([logits, logits.new_zeros(1, logits.shape[1])])
                positions = torch.cat([positions, positions.new_zeros(1)])
            n = len(job.prompt_ids)
            positions[row] = n
            if job.finish_reason is None:
                ids = torch.tensor([job.prompt_ids], device=self.device)
                logits[row] = prefill(self.model, ids, positions[row : row + 1], first_row=row)[0]
        return bool(offered), logits, positions

    @staticmethod
    def _top(rows: list[Job], logp: torch.Tensor) -> None:
        """Record each row's most likely tokens of this step (rows that asked for them)."""
        # default: every row that asked may have been cancelled this very step
        k = max((j.request.top_logprobs for j in rows if j.finish_reason is None), default=0)
        if k <= 0:
            return
        values, ids = logp.topk(k, dim=-1)
        values_l, ids_l = values.tolist(), ids.tolist()
        for row, job in enumerate(rows):
            if job.finish_reason is None and job.request.top_logprobs:
                n = job.request.top_logprobs
                job.step_top = list(zip(ids_l[row][:n], values_l[row][:n], strict=True))

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
    def _sample(
        logits: torch.Tensor,
        bitmask: torch.Tensor | None,
        steps: list[int],
        params: _SamplingParams,
        all_greedy: bool,
    ) -> torch.Tensor:
        """Next tokens [B] from logits [B,V]; ``steps[b]``: how many tokens row b sampled before."""
        if all_greedy:
            # the same answer as sample_tokens at temperature 0, minus its top-k/top-p bookkeeping
            if bitmask is not None:
                logits = apply_token_bitmask(logits, bitmask)
            return logits.argmax(-1)
        if len(set(steps)) == 1:
            return sample_tokens(logits, bitmask=bitmask, step=steps[0], **params)
        # rows that joined at different steps: one call per group, so each row's seeded stream
        # is the one it would have had alone
        out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
        for step in set(steps):
            idx = torch.tensor([i for i, s in enumerate(steps) if s == step], device=logits.device)
            mask = None if bitmask is None else bitmask[idx]
            group = _SamplingParams(
                temperature=params["temperature"][idx],
                top_k=params["top_k"][idx],
                top_p=params["top_p"][idx],
                seed=params["seed"][idx],
            )
            out[idx] = sample_tokens(logits[idx], bitmask=mask, step=step, **group)
        return out

    def _sampling_params(self, jobs: list[Job]) -> _SamplingParams:
        dev = self.device
        seeds = [j.seed for j in jobs]  # any Python int is a seed, folded into int64 range by _begin
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

    def _accept(self, job: Job, token: int, logprob: float | None) -> None:
        job.sampled += 1
        if job.state is not None:
            try:
                job.state.advance(token)
            except Exception as exc:
                self._fail(job, exc)
                return
            done = self._constraint_done(job, job.state)
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
        elif job.sampled >= job.budget:
            self._finish(job, "length", token, logprob)
        else:
            self._emit(job, token, None, logprob)

    def _add_token(self, job: Job, token: int, logprob: float | None) -> bool:
        """Record a token and its text; True when the text now contains a stop string."""
        job.token_ids.append(token)
        if logprob is not None:
            job.logprobs.append(logprob)
        if job.request.top_logprobs:
            job.top_logprobs.append(job.step_top)
        assert job.detok is not None  # set by _begin
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
            try:
                job.on_event(TokenEvent(token_id=token, text=piece, logprob=logprob, finish_reason=finish))
            except Exception as exc:  # a listener's bug fails its own request, not the whole batch
                self._fail(job, exc)

    def _constraint_done(self, job: Job, state: ConstraintState) -> bool:
        """``state.is_finished()`` (the job's); a raising constraint fails the job (and counts as done)."""
        try:
            return bool(state.is_finished())
        except Exception as exc:
            self._fail(job, exc)
            return False

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.error, job.finish_reason = exc, "error"
        if job.on_done is not None:
            job.on_done(job)

    def _finish(self, job: Job, reason: str, token: int | None, logprob: float | None = None) -> None:
        job.finish_reason = reason
        self._emit(job, -1 if token is None else token, reason, logprob)
        if job.on_done is not None:
            job.on_done(job)
