"""Whether a string can be written under a GBNF grammar, as llama.cpp itself decides.

For tests that check every gold answer of a dataset can be written under the constrained
grammar: if a gold answer were refused, a constrained model could never score on that sample.
`accepts` loads only the vocabulary of a GGUF model (cached per path), tokenizes the text the
way the model would write it, and walks llama.cpp's own grammar sampler through the tokens,
one single-candidate step at a time, then asks whether the grammar may end there (EOS).

llama.cpp matches a token's piece against the grammar character by character (holding partial
UTF-8 sequences over token boundaries), so how the text is split into tokens does not change
the answer; a token is refused only when its characters cannot continue the grammar.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
from pathlib import Path
from typing import Any

from llama_cpp import llama_cpp as lib  # the package import also routes llama.cpp's log


@functools.cache  # lru_cache without a bound
def _vocab(path: str) -> tuple[Any, Any]:
    """(model, vocab) of a GGUF file, vocabulary only; kept for the life of the process."""
    logger = logging.getLogger("llama-cpp-python")  # llama-cpp-python routes llama.cpp's log here
    level = logger.level
    logger.setLevel(logging.ERROR)  # quiet the loader, as Llama(verbose=False) does
    try:
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        params.vocab_only = True
        model = lib.llama_model_load_from_file(path.encode("utf-8"), params)
    finally:
        logger.setLevel(level)
    if not model:
        raise ValueError(f"cannot load the vocabulary of {path}")
    return model, lib.llama_model_get_vocab(model)


def _tokenize(vocab: Any, text: str) -> list[int]:
    """Tokens of `text` without BOS, special tokens kept as plain text."""
    data = text.encode("utf-8")
    size = len(data) + 8
    while True:
        buf = (lib.llama_token * size)()
        n = lib.llama_tokenize(vocab, data, len(data), buf, size, False, False)
        if n >= 0:
            return list(buf[:n])
        size = -n


def accepts(grammar: str, text: str, vocab_model: Path) -> bool:
    """Whether llama.cpp's own grammar engine accepts `text` as a complete string of the GBNF
    `grammar` (root rule `root`), fed through the tokenizer of the GGUF `vocab_model`."""
    _, vocab = _vocab(str(Path(vocab_model).expanduser().resolve()))
    sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise ValueError(f"the grammar does not parse (llama.cpp says why on stderr):\n{grammar}")
    one = (lib.llama_token_data * 1)()
    array = lib.llama_token_data_array(one, 1, -1, False)

    def allowed(token: int) -> bool:
        entry: Any = one[0]  # ctypes fields take Python numbers
        entry.id, entry.logit, entry.p = token, 0.0, 0.0
        array.size, array.selected = 1, -1
        lib.llama_sampler_apply(sampler, ctypes.byref(array))
        return not math.isinf(entry.logit)

    try:
        for token in _tokenize(vocab, text):
            if not allowed(token):
                return False
            # Only after `allowed`: accepting a refused token throws in C++ and aborts Python.
            lib.llama_sampler_accept(sampler, token)
        end = lib.llama_vocab_eos(vocab)
        if end < 0:  # LLAMA_TOKEN_NULL: fall back to end-of-turn
            end = lib.llama_vocab_eot(vocab)
        return allowed(end)
    finally:
        lib.llama_sampler_free(sampler)
