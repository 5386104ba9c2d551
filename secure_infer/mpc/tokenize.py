"""Tokenisation on the data owner's side (the gateway): text never leaves it, only token ids go to party 0."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.implementations.bert_wordpiece import BertWordPieceTokenizer

__all__ = ["TextTokenizer"]


class TextTokenizer:
    """Fast BERT tokenisation with truncation to the policy's maximum sequence length."""

    def __init__(self, directory: Path, max_len: int) -> None:
        if (directory / "tokenizer.json").is_file():
            self._tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        else:
            self._tok = BertWordPieceTokenizer(str(directory / "vocab.txt"), lowercase=True)._tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_len)

    def ids(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tok.encode_batch(texts)]
