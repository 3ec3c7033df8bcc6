"""The embedded backend: llama-cpp-python in this process, no server needed.

One model is loaded per process and reused across calls (a request for another model unloads
the first). Calls run on one worker thread, off the event loop, one at a time: llama.cpp's
context is not thread-safe, and keeping one context keeps its prompt-prefix reuse working.

Token counts are llama-cpp-python's own. Time to first token is stamped when the first token
is about to be sampled (the prompt has been evaluated by then); cached prompt tokens are the
prompt tokens that were not sent to `eval` before that moment, i.e. served from the KV prefix
kept from the previous call or restored from a saved state (kv_states.py).
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from slmscope.metering.usage import Timings, Usage
from slmscope.models.base import (
    NATIVE_TOOLS_HINT,
    BackendError,
    BackendInfo,
    BackendUnavailable,
    BadResponse,
    Completion,
    ContextOverflow,
    GenerationConfig,
    Message,
    ToolCall,
    ToolsUnsupported,
)
from slmscope.models.catalog import EMBEDDED_ABILITIES
from slmscope.models.grammar import GrammarError, LazyGrammar
from slmscope.models.kv_states import CHUNK, DEFAULT_BUDGET_MB, KvStates, prepare
from slmscope.models.pull import file_sha256
from slmscope.models.template_tools import (
    NO_CALL,
    has_tool_format,
    read_calls,
    required_call,
    template_messages,
)


def llama_cpp_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "not installed"


def chat_template(path: Path) -> str:
    """The chat template in a GGUF file's metadata, read without loading the weights."""
    from llama_cpp import Llama

    try:
        vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as err:
        raise BackendUnavailable(f"cannot read {path}: {err}", where=str(path)) from err
    try:
        return str(dict(vocab.metadata).get("tokenizer.chat_template", ""))
    finally:
        vocab.close()


_LOADED: dict[str, Any] = {}  # "path|n_ctx|n_threads" -> Llama; at most one entry
_STATES: dict[str, KvStates] = {}  # the same key -> the saved KV states of that context
_LOAD_LOCK = threading.RLock()
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmscope-llamacpp")


@atexit.register
def unload() -> None:
    """Free the loaded model (at exit too: llama-cpp-python cannot free it once modules unload)."""
    with _LOAD_LOCK:
        for llm in _LOADED.values():
            llm.close()
        _LOADED.clear()
        _STATES.clear()


def _key(path: Path, n_ctx: int, n_threads: int | None) -> str:
    return f"{path.resolve()}|{n_ctx}|{n_threads}"


def kv_states(path: Path, *, n_ctx: int, n_threads: int | None, budget_mb: int) -> KvStates:
    """The KV states of the loaded context for these settings (its budget as asked last; states
    saved under another budget are dropped)."""
    key = _key(path, n_ctx, n_threads)
    with _LOAD_LOCK:
        held = _STATES.get(key)
        if held is None or held.budget_bytes != budget_mb * 2**20:
            held = _STATES[key] = KvStates(budget_mb * 2**20)
        return held


def load_llama(path: Path, *, n_ctx: int, n_threads: int | None) -> Any:
    """The process's one loaded model for these settings (loading it, unloading any other)."""
    key = _key(path, n_ctx, n_threads)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        unload()  # one model per process
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise BackendUnavailable(
                "llama-cpp-python is not installed (pip install llama-cpp-python)", where="llamacpp"
            ) from err
        if not path.is_file():
            raise BackendUnavailable(f"model file {path} does not exist", where="llamacpp")
        try:
            # n_batch: prompts are evaluated in the same chunks whatever came before (kv_states.py)
            llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=CHUNK,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise BackendUnavailable(f"cannot load {path}: {err}", where="llamacpp") from err
        _LOADED[key] = llm
        return llm


# llama.cpp's `general.file_type` codes for the common GGUF quantizations.
GGUF_FILE_TYPES = {
    "0": "F32",
    "1": "F16",
    "2": "Q4_0",
    "3": "Q4_1",
    "7": "Q8_0",
    "8": "Q5_0",
    "9": "Q5_1",
    "10": "Q2_K",
    "11": "Q3_K_S",
    "12": "Q3_K_M",
    "13": "Q3_K_L",
    "14": "Q4_K_S",
    "15": "Q4_K_M",
    "16": "Q5_K_S",
    "17": "Q5_K_M",
    "18": "Q6_K",
    "32": "BF16",
}


def kv_cache_bytes(metadata: dict[str, str], n_ctx: int) -> int | None:
    """K and V of every layer for n_ctx tokens at 2 bytes each; None where metadata lacks a key."""
    arch = metadata.get("general.architecture", "")
    try:
        layers = int(metadata[f"{arch}.block_count"])
        heads = int(metadata[f"{arch}.attention.head_count"])
        kv_heads = int(metadata.get(f"{arch}.attention.head_count_kv", heads))
        head_dim = int(metadata[f"{arch}.embedding_length"]) // heads
        k_len = int(metadata.get(f"{arch}.attention.key_length", head_dim))
        v_len = int(metadata.get(f"{arch}.attention.value_length", head_dim))
    except (KeyError, ValueError, ZeroDivisionError):
        return None
    return n_ctx * layers * kv_heads * (k_len + v_len) * 2


class LlamaCppBackend:
    """Chat completions from a GGUF file through llama-cpp-python, in this process."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        name: str | None = None,
        kv_states_mb: int = DEFAULT_BUDGET_MB,
    ) -> None:
        """`kv_states_mb`: the memory for saved KV states (prefix reuse across agents and
        samples, kv_states.py); 0 keeps none, and only the live context's whole chunks are
        reused."""
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.name = name or f"llamacpp:{path.stem}"
        self.kv_states_mb = kv_states_mb

    async def load(self) -> None:
        """Load the model now (otherwise the first call does), off the event loop."""
        await asyncio.get_running_loop().run_in_executor(_WORKER, self._llm)

    def _llm(self) -> Any:
        return load_llama(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    def _states(self) -> KvStates:
        budget = max(0, self.kv_states_mb)
        return kv_states(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads, budget_mb=budget)

    async def aclose(self) -> None:
        return None  # the loaded model stays for the next backend of the same file

    async def memory_record(self) -> dict[str, Any]:
        """Model file size and KV-cache size (loading the model if need be). llama.cpp does not
        report its KV cache through this binding, so it is computed from the GGUF metadata
        (layers x context x K and V heads x f16, llama.cpp's default cache type)."""
        llm = await asyncio.get_running_loop().run_in_executor(_WORKER, self._llm)
        metadata = dict(llm.metadata)
        record: dict[str, Any] = {
            "file_mb": round(self.path.stat().st_size / 2**20, 1),
            "gguf_quantization": GGUF_FILE_TYPES.get(
                metadata.get("general.file_type", ""), metadata.get("general.file_type")
            ),
            "gguf_name": metadata.get("general.name"),
        }
        kv = kv_cache_bytes(metadata, self.n_ctx)
        if kv is not None:
            record["kv_cache_mb"] = round(kv / 2**20, 1)
            record["kv_cache_source"] = "computed from GGUF metadata (f16 K/V)"
        record["kv_states"] = self._states().record()
        return record

    async def describe(self) -> BackendInfo:
        """The file (its SHA-256, remembered once computed), its chat template, the binding's
        version; memory as `memory_record`. Loads the model if need be."""
        memory = await self.memory_record()
        llm = await asyncio.get_running_loop().run_in_executor(_WORKER, self._llm)
        template = dict(llm.metadata).get("tokenizer.chat_template", "")
        identity = {
            "file": str(self.path),
            "size_bytes": self.path.stat().st_size,
            "sha256": file_sha256(self.path),
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
            "llama_cpp_python": llama_cpp_version(),
            "n_ctx": self.n_ctx,
        }
        return BackendInfo("llamacpp", True, True, identity, memory, EMBEDDED_ABILITIES)

    async def chat(self, messages: Sequence[Message], gen: GenerationConfig) -> Completion:
        loop = asyncio.get_running_loop()
        if gen.tools:
            llm = await loop.run_in_executor(_WORKER, self._llm)
            if not has_tool_format(dict(llm.metadata).get("tokenizer.chat_template", "")):
                raise ToolsUnsupported(NATIVE_TOOLS_HINT, where=self.name)
            if gen.tool_choice == "required":
                gen = dataclasses.replace(gen, constraint=required_call(gen.tools))
            elif gen.tool_choice == "none":
                gen = dataclasses.replace(gen, constraint=NO_CALL)
        return await loop.run_in_executor(_WORKER, self._chat_blocking, list(messages), gen)

    def _chat_blocking(self, messages: list[Message], gen: GenerationConfig) -> Completion:
        """One completion; with tools (native mode), rendered by the model's own chat template
        and its calls read back (template_tools.py)."""
        llm = self._llm()
        first: list[tuple[float, int]] = []
        evaluated = [0]
        real_eval = llm.eval

        def counting_eval(tokens: Sequence[int]) -> None:
            evaluated[0] += len(tokens)
            real_eval(tokens)

        def stamp(input_ids: Any, scores: Any) -> Any:
            if not first:
                first.append((time.perf_counter(), evaluated[0]))
            return scores

        processors: list[Any] = [stamp]
        grammar = None
        if gen.constraint is not None:
            try:
                grammar = LazyGrammar(
                    llm,
                    gen.constraint.grammar,
                    greedy=gen.temperature == 0,
                    budget=gen.max_tokens,
                    closings=gen.constraint.closings,
                )
            except GrammarError as err:
                raise BackendError(f"{gen.constraint.name}: {err}", where=self.name) from err
            processors.append(grammar)
        states = self._states()
        real_generate = llm.generate

        def reusing_generate(tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
            prepare(llm, states, np.asarray(tokens, dtype=np.intc))  # before a prefix is matched
            return real_generate(tokens, *args, **kwargs)

        # Both shadow the methods on this instance, for this call only.
        llm.eval, llm.generate = counting_eval, reusing_generate
        start = time.perf_counter()
        out = None
        try:
            out = llm.create_chat_completion(
                messages=template_messages(messages) if gen.tools else messages,
                tools=list(gen.tools) or None,
                max_tokens=gen.max_tokens,
                temperature=gen.temperature,
                top_p=gen.top_p,
                stop=list(gen.stop) or None,
                seed=gen.seed,
                logits_processor=processors,
            )
        except ValueError as err:
            if "exceed context window" in str(err):
                raise ContextOverflow(str(err), where=self.name) from err
            raise BackendError(str(err), where=self.name) from err
        except RuntimeError as err:
            raise BackendError(f"llama.cpp failed: {err}", where=self.name) from err
        finally:
            del llm.eval, llm.generate
            if out is None:  # failed: what the context holds is no longer known
                states.live_canon = llm.n_tokens = 0
            if grammar is not None:
                grammar.close()
        end = time.perf_counter()
        try:
            choice = out["choices"][0]
            text = choice["message"]["content"] or ""
            raw = dict(out["usage"])
            if grammar is not None:
                raw["grammar_steps"], raw["grammar_full_checks"] = (
                    grammar.steps,
                    grammar.full_checks,
                )
                if grammar.closed:
                    raw["grammar_closed"] = grammar.closed
        except (KeyError, IndexError, TypeError) as err:
            raise BadResponse(f"unexpected completion {out!r:.200}", where=self.name) from err
        prompt, completion = int(raw["prompt_tokens"]), int(raw["completion_tokens"])
        prompt_evaluated = first[0][1] if first else prompt
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=max(0, prompt - prompt_evaluated),
        )
        timings = Timings.measure(start, first[0][0] if first else None, end, completion)
        calls: tuple[ToolCall, ...] = ()
        if gen.tools and gen.tool_choice != "none":  # an answer-only turn's grammar opens none
            text, calls = read_calls(text)
        return Completion(
            text=text,
            tool_calls=calls,
            usage=usage,
            timings=timings,
            finish_reason=choice.get("finish_reason"),
            raw_usage=raw,
        )
