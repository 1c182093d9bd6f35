"""The model behind `nmt serve`: a `Translator` loaded and warmed up in the model thread, and the
decoding of one merged batch there, as `nmt translate` decodes (same search, same scores)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vocab.specials import EOS_TOKEN

PAGE_NBEST = 3  # the n-best the web page asks for (capped by the beam): warmed up at start


@dataclass(frozen=True)
class Settings:
    """What a batch shares (the batching key): the search and what is computed besides."""
    beam_size: int
    alpha: float
    nbest: int
    attention: bool


@dataclass(frozen=True)
class LineResult:
    found: list  # the n-best Translations, best first
    attention: object  # [T+1, S+1] weights, or None (not asked; blank or cut line)
    source_tokens: list | None
    target_tokens: list | None


class ServedModel:
    def __init__(self):
        self.translator = None

    def load(self, model_dirs: Sequence[str], threads: int | None, **decode) -> None:
        """Loads the model folders (several: an ensemble) with `decode` overrides of their recipe
        (beam_size, alpha, ..., None: the recipe's), then runs the searches that the default
        request and the web page's request use once, so that no client waits for their tracing."""
        from nmt.system import runtime
        runtime.import_tensorflow(threads)
        from nmt.translation.translate import Translator
        self.translator = Translator(list(model_dirs), **decode)
        sample = self.translator.src_tokenizer.decode(
            list(range(4, min(8, len(self.translator.src_tokenizer)))))
        for settings in {self.default(), self.default(nbest=self.page_nbest, attention=True)}:
            self.translate(settings, [sample])

    @property
    def page_nbest(self) -> int:
        return min(PAGE_NBEST, self.translator.decode.beam_size)

    def default(self, **changes) -> Settings:
        """The batching key of a request that sets only `changes`."""
        decode = self.translator.decode
        values = {"beam_size": decode.beam_size, "alpha": decode.alpha, "nbest": 1,
                  "attention": False}
        values.update({k: v for k, v in changes.items() if v is not None})
        return Settings(**values)

    def translate(self, settings: Settings, lines: list) -> list[LineResult]:
        """One merged batch: `settings.nbest` translations of each line, with their attention if
        asked. Runs in the model thread."""
        translator = self.translator
        found = translator.translate(lines, settings.nbest, beam_size=settings.beam_size,
                                     alpha=settings.alpha)
        if not settings.attention:
            return [LineResult(f, None, None, None) for f in found]
        weights = translator.attention(lines, [f[0] for f in found])
        return [LineResult(f, w, None if w is None else
                           translator.src_tokenizer.source_pieces(line) + [EOS_TOKEN],
                           None if w is None else
                           translator.tgt_tokenizer.pieces(f[0].ids) + [EOS_TOKEN])
                for line, f, w in zip(lines, found, weights)]
