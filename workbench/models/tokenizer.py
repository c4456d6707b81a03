"""A checkpoint's tokenizer: ``tokenizer.json`` through ``tokenizers``, chat templates through jinja2.

The chat template comes from ``tokenizer_config.json`` (``chat_template``: a string, or a list
of named templates of which ``default`` is used) or a ``chat_template.jinja`` file beside it.
It is rendered in a sandboxed jinja2 environment with the same switches Hugging Face uses
(``trim_blocks``, ``lstrip_blocks``, a ``raise_exception`` helper, a non-escaping ``tojson``), so
templates written for ``transformers`` render the same text here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as _BackendTokenizer

from workbench.errors import UsageError
from workbench.models.config import ModelLoadError

__all__ = ["Tokenizer"]


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json writes special tokens either as strings or as AddedToken dicts
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _raise(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any, indent: int | None = None, ensure_ascii: bool = False, sort_keys: bool = False
) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


class Tokenizer:
    """Encode/decode text for one model, find its EOS tokens, render its chat template."""

    def __init__(
        self,
        backend: _BackendTokenizer,
        *,
        chat_template: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        eos_token_ids: Sequence[int] = (),
    ) -> None:
        self.backend = backend
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token
        ids = set(eos_token_ids)
        if eos_token is not None and (eos_id := backend.token_to_id(eos_token)) is not None:
            ids.add(eos_id)
        self.eos_token_ids: list[int] = sorted(ids)
        self._template = None
        if chat_template:
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.filters["tojson"] = _tojson
            env.globals["raise_exception"] = _raise
            env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            try:
                self._template = env.from_string(chat_template)
            except TemplateError as exc:
                raise ModelLoadError(f"the chat template does not parse: {exc}") from None

    @classmethod
    def from_directory(cls, directory: str | Path, eos_token_ids: Sequence[int] = ()) -> Tokenizer:
        """Load tokenizer.json (+ tokenizer_config.json, chat_template.jinja) from a checkpoint."""
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.exists():
            raise ModelLoadError(f"{path} is missing: the local runtime reads tokenizers from tokenizer.json")
        try:
            backend = _BackendTokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises a bare Exception on bad files
            raise ModelLoadError(f"{path} is not a readable tokenizer: {exc}") from None
        settings: dict[str, Any] = {}
        config_path = directory / "tokenizer_config.json"
        if config_path.exists():
            try:
                settings = json.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise ModelLoadError(f"{config_path} is not readable JSON: {exc}") from None
        template = settings.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": "..."}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        jinja_file = directory / "chat_template.jinja"
        if template is None and jinja_file.exists():
            template = jinja_file.read_text(encoding="utf-8")
        return cls(
            backend,
            chat_template=template,
            bos_token=_token_text(settings.get("bos_token")),
            eos_token=_token_text(settings.get("eos_token")),
            eos_token_ids=eos_token_ids,
        )

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special_tokens`` applies the tokenizer's post-processor (e.g. BOS)."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of token ids."""
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str | None:
        """The vocabulary entry (not decoded text) of one id."""
        return self.backend.id_to_token(token_id)

    def apply_chat_template(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        tools: Sequence[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render chat ``messages`` (and offered ``tools``) into prompt text with the checkpoint's template.

        As ``transformers`` passes them: ``tools`` only when there are some, and a past call's
        ``arguments`` as an object (OpenAI sends JSON text; templates write it with ``tojson``).
        """
        if self._template is None:
            raise UsageError("this model's tokenizer has no chat_template: send a prompt instead of messages")
        if tools:
            extra["tools"] = list(tools)
        try:
            return self._template.render(
                messages=[_with_argument_objects(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "",
                eos_token=self.eos_token or "",
                **extra,
            )
        except TemplateError as exc:
            raise UsageError(f"the chat template rejected these messages: {exc}") from None


def _with_argument_objects(message: Any) -> Any:
    """``message`` with each tool call's JSON-text ``arguments`` parsed into an object."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not calls:
        return message
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            with contextlib.suppress(ValueError):  # not JSON: the template gets the text as sent
                call = {**call, "function": {**function, "arguments": json.loads(function["arguments"])}}
        out.append(call)
    return {**message, "tool_calls": out}
