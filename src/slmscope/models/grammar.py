"""Grammar-constrained decoding on the embedded backend, paid for only where it bites.

llama-cpp-python's own `grammar=` puts llama.cpp's grammar sampler in the sampler chain, where
it checks every token of the vocabulary at every step: 1.8 to 2 times the cost of a token on a
0.5B model. llama.cpp's own sampler (common/sampling.cpp) does better: it samples first and
checks only the token it drew, and runs the grammar over the whole vocabulary only when that
token is refused. This logits processor does the same for greedy decoding (the study's
temperature 0), where the token drawn is the one with the highest logit; with sampling it
checks the whole vocabulary at each step. It keeps the grammar's state in step with the
tokens the model has produced, and counts how often the whole vocabulary had to be checked.

A reply that opens with free text (an agent's thought) could run out of tokens before its
structured part, and a tool's text input (a search query) can run on until the budget cuts
it. Given the call's token budget and the constraint's closings, the processor switches to a
closing's grammar when the budget is nearly spent and the reply is still inside the text that
closing ends, so the reply ends well-formed; `closed` names the closing it took, if any.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from slmscope.models.base import Closing

TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarError(ValueError):
    """The grammar did not parse (llama.cpp prints why on stderr)."""


class LazyGrammar:
    """A logits processor holding one reply to a GBNF grammar; one instance per reply."""

    def __init__(
        self,
        llm: Any,
        grammar: str,
        *,
        greedy: bool,
        budget: int | None = None,
        closings: Sequence[Closing] = (),
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llm = llm
        self.greedy = greedy
        self.sampler: Any = None  # set first: __del__ runs even when parsing fails
        self.sampler = self._parse(grammar)
        self.budget = budget or 0
        self.closings = [(c, re.compile(c.opened, re.DOTALL)) for c in closings] if budget else []
        self.closed: str | None = None
        self.reply_start: int | None = None
        self.n_vocab = int(llm.n_vocab())
        self.prompt_len: int | None = None
        self.accepted = 0
        self.steps = 0
        self.full_checks = 0  # steps where the whole vocabulary went through the grammar
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)
        self._all: Any = None
        self._all_view: npt.NDArray[Any] | None = None

    def _parse(self, grammar: str) -> Any:
        sampler = self._lib.llama_sampler_init_grammar(
            self.llm._model.vocab, grammar.encode("utf-8"), b"root"
        )
        if not sampler:
            raise GrammarError("the grammar does not parse")
        return sampler

    def _close_opening(self, input_ids: npt.NDArray[np.intc]) -> None:
        """Switch to a closing's grammar, once, if the budget is nearly spent and the reply so
        far is inside the text that closing ends."""
        assert self.reply_start is not None
        produced = len(input_ids) - self.reply_start
        left = self.budget - produced
        due = [c for c in self.closings if left <= min(c[0].reserve, self.budget // 2)]
        if not due:
            return
        text = self.llm.detokenize(list(input_ids[self.reply_start :])).decode(errors="ignore")
        for closing, opened in due:
            if opened.fullmatch(text):
                self._lib.llama_sampler_free(self.sampler)
                self.sampler = self._parse(closing.grammar)
                self.prompt_len, self.accepted = len(input_ids), 0
                self.closed = closing.name
                # Those with a smaller reserve come later: a thought closed early may still
                # open a tool input that runs long.
                self.closings = [c for c in self.closings if c[0].reserve < closing.reserve]
                return

    def close(self) -> None:
        if self.sampler:
            self._lib.llama_sampler_free(self.sampler)
            self.sampler = None

    def __del__(self) -> None:
        self.close()

    def _catch_up(self, input_ids: npt.NDArray[np.intc]) -> None:
        """Accept into the grammar the tokens produced since the last step."""
        if self.prompt_len is None:
            self.prompt_len = self.reply_start = len(input_ids)
        for token in input_ids[self.prompt_len + self.accepted :]:
            self._lib.llama_sampler_accept(self.sampler, int(token))
            self.accepted += 1

    def allows(self, token: int, logit: float) -> bool:
        entry: Any = self._one[0]  # ctypes fields take Python numbers
        entry.id, entry.logit, entry.p = token, logit, 0.0
        self._one_array.size, self._one_array.selected = 1, -1
        self._lib.llama_sampler_apply(self.sampler, ctypes.byref(self._one_array))
        return not math.isinf(entry.logit)

    def _check_all(self, scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        if self._all is None:
            self._all = (self._lib.llama_token_data * self.n_vocab)()
            self._all_view = np.frombuffer(self._all, dtype=TOKEN_DATA)
        view = self._all_view
        assert view is not None
        view["id"] = np.arange(self.n_vocab, dtype=np.intc)
        view["logit"] = scores[: self.n_vocab]
        view["p"] = 0.0
        array = self._lib.llama_token_data_array(self._all, self.n_vocab, -1, False)
        self._lib.llama_sampler_apply(self.sampler, ctypes.byref(array))
        out = scores.copy()
        out[: self.n_vocab] = view["logit"]
        return out

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        self._catch_up(input_ids)
        self._close_opening(input_ids)
        self.steps += 1
        if self.greedy:
            best = int(np.argmax(scores))
            if self.allows(best, float(scores[best])):
                # Only this token stays: whatever runs after this processor (penalties) can
                # then never pick one the grammar was not asked about.
                only = np.full_like(scores, -np.inf)
                only[best] = scores[best]
                return only
        self.full_checks += 1
        return self._check_all(scores)
