"""wattmoe.Tokenizer: the engine's tokenizer on its own, without a model — "bytes" or a Hugging Face tokenizer.json
(such as one `wattmoe data tokenizer` trained). encode() gives the ids of the text alone (no BOS/EOS added; special
tokens written in the text, such as "<|endoftext|>", map to their ids), as `tokenizers`' encode(text,
add_special_tokens=False).ids does.
"""
from . import _core


class Tokenizer:
    """Make it with Tokenizer.load()."""

    def __init__(self, core):
        self._core = core

    @classmethod
    def load(cls, spec):
        """"bytes", or a tokenizer.json path (or a directory holding one). Raises wattmoe.Error naming the file."""
        return cls(_core.Tokenizer.load(str(spec)))

    def encode(self, text):
        """Token ids of the text (a list of ints)."""
        return self._core.encode(text)

    def decode(self, ids, skip_special=False):
        """The text of token ids; skip_special drops special tokens. Invalid UTF-8 (a byte model may end inside a
        character) is replaced."""
        return self._core.decode([int(i) for i in ids], skip_special).decode("utf-8", "replace")

    vocab_size = property(lambda self: self._core.vocab_size, doc="one more than the largest id")
    bos_id = property(lambda self: self._core.bos_id, doc="the beginning-of-text id, or None")
    eos_id = property(lambda self: self._core.eos_id, doc="the end-of-text id, or None")

    def token_to_id(self, token):
        return self._core.token_to_id(token)

    def id_to_token(self, id):
        return self._core.id_to_token(id)

    def __repr__(self):
        return f"wattmoe.Tokenizer({self._core.describe()!r})"
