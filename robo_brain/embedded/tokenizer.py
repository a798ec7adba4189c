"""A byte-level tokenizer (no merges) plus a few whole-token chunks of the plan syntax.

Every character of any text has a token, so the decoder can spell a colour word it never saw
(``purple``, ``cyan``) by copying it from the instruction, and writes pixel coordinates digit by
digit. A word-level (or plan-trained BPE) vocabulary could not. The fixed syntax of the output
format (``pick(object="``, ``") @ grasp=(`` ...) and a few frequent words are single added tokens,
which makes an answer about 2.5x shorter than one token per character: generation latency and
training cost scale with that length. The tokenizer is a standard ``PreTrainedTokenizerFast``
saved as ``tokenizer.json``; ``AutoTokenizer.from_pretrained(folder)`` loads it.
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


def make_char_tokenizer():
    """Return the byte-level ``PreTrainedTokenizerFast`` (256 byte tokens, :data:`SYNTAX_TOKENS`, specials)."""
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
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in SYNTAX_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
