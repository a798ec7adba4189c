"""A byte-level tokenizer (no merges) plus a few whole-token chunks of the plan syntax.

Every character of any text has a token, so the decoder can spell a colour word it never saw
(``purple``, ``cyan``) by copying it from the instruction, and writes pixel coordinates digit by
digit. A word-level (or plan-trained BPE) vocabulary could not. The fixed syntax of the output
format (``pick(object="``, ``") @ grasp=(`` ...) and a few frequent words are single added tokens,
which makes an answer about 2.5x shorter than one token per character: generation latency and
training cost scale with that length.

Pixel coordinates are **one token per integer pixel**: :data:`COORD_TOKENS` are added tokens
``"0"`` .. ``"127"`` (the simulator renders 128 x 128), matched longest first, so ``(61, 88)`` is
``(``, ``61``, ``, ``, ``88``, ``)`` and a coordinate is a single classification over pixel bins
(the model's embedding of these tokens starts as a smooth function of the value, see
:func:`robo_brain.embedded.model.build_model`). They decode to their digits, so the text the
plan-language parser reads is unchanged; larger or negative numbers still spell with the digit
tokens. The tokenizer is a standard ``PreTrainedTokenizerFast`` saved as ``tokenizer.json``;
``AutoTokenizer.from_pretrained(folder)`` loads it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
SYNTAX_TOKENS = (
    "Instruction: ", "Reasoning: ", "Plan:\n", "done()",
    'pick(object="', 'place(target="', 'push(object="', 'move_to(target="', '", direction="',
    '") @ grasp=(', '") @ place=(', '") @ goal=(', '") @ push_start=(', "), push_end=(", ")\n", ", ",
    " block", " bowl", " tray", " cube", " container", " steps.", "the ",
)
"""Whole-token chunks (matched before the byte-level model, longest first)."""
REASONING_TOKENS = ("pick place, ", "stack, ", "rearrange, ", "push, ")
"""The task families as the short reasoning line writes them (one token each)."""
WORD_TOKENS = ("red", "green", "blue", "yellow", "orange", "pink", "white", "small", "large")
"""Colour and size words of the training scenes as whole tokens: the decoder's query for "the red
block's patches" then starts from one embedding instead of a spelling. Other words (a held-out
colour such as ``purple``) are still spelled byte by byte and are copied from the instruction."""
COORD_BINS = 128
COORD_TOKENS = tuple(str(n) for n in range(COORD_BINS))
"""One added token per integer pixel coordinate ``0 .. COORD_BINS-1``."""


def make_char_tokenizer():
    """Return the byte-level ``PreTrainedTokenizerFast``: specials, 256 byte tokens, :data:`SYNTAX_TOKENS`,
    :data:`REASONING_TOKENS`, :data:`COORD_TOKENS` and :data:`WORD_TOKENS` (in that id order)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.add_tokens([AddedToken(t, normalized=False, special=False)
                    for t in (*SYNTAX_TOKENS, *REASONING_TOKENS, *COORD_TOKENS, *WORD_TOKENS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def coord_token_ids(tokenizer) -> list[int]:  # noqa: ANN001 - PreTrainedTokenizerFast
    """Token id of each pixel coordinate ``0 .. COORD_BINS-1`` (empty for a tokenizer without them)."""
    vocab = tokenizer.get_vocab()
    ids = [vocab.get(t) for t in COORD_TOKENS]
    return [] if None in ids or len(set(ids)) != len(ids) else ids
