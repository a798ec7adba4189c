"""Tiny random checkpoints built offline from configs, for smoke tests and for debugging the serving path.

``robo-stack brain make-tiny --kind llava|encoder-decoder --out DIR`` writes one. The weights are
random (the answers are gibberish); what is real is the folder layout, the configs, the
processor / tokenizer files and every loading and generation code path, exactly as for a
trained checkpoint. Nothing is downloaded: the tokenizer is a byte-level BPE trained in memory
on the plan language, so any text encodes.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

KINDS = ("llava", "encoder-decoder")

_CORPUS = [
    'Reasoning: The red block is left of the blue bowl. Plan: pick(object="red block") @ grasp=(61, 88)',
    'place(target="blue bowl") @ place=(30, 40) push(object="green block", direction="left") '
    "@ push_start=(10, 20), push_end=(30, 20) move_to(target=\"tray\") open_gripper() close_gripper() done()",
    "put stack sort the yellow orange purple pink cyan white small large block bowl tray on in into forward "
    "backward right failure grasp_missed object_dropped revise the plan instruction 0123456789",
]
_SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
_CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def make_tokenizer(vocab_size: int = 400):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained in memory (special tokens include ``<image>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def make_tiny_llava(out: str | Path, seed: int = 0, image_size: int = 32) -> Path:
    """Write a tiny LLaVA (CLIP vision tower + Llama text model) with its processor to ``out``."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tok = make_tokenizer()
    patch = 8
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=patch, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         image_seq_length=(image_size // patch) ** 2)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=_CHAT_TEMPLATE)
    return _save(out, model, processor)


def make_tiny_encoder_decoder(out: str | Path, seed: int = 0, image_size: int = 32, n_positions: int = 256) -> Path:
    """Write a tiny ``VisionEncoderDecoderModel`` (ViT + GPT-2) with tokenizer and image processor to ``out``."""
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(seed)
    tok = make_tokenizer()
    enc = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    image_size=image_size, patch_size=8)
    dec = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=n_positions,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id = tok.bos_token_id
    config.pad_token_id = tok.pad_token_id
    config.eos_token_id = tok.eos_token_id
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = tok.bos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    images = ViTImageProcessor(size={"height": image_size, "width": image_size})
    path = _save(out, model, tok)
    images.save_pretrained(path)
    return path


def _save(out: str | Path, model, processor) -> Path:  # noqa: ANN001 - transformers objects
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    logger.info("wrote tiny %s checkpoint to %s", type(model).__name__, path)
    return path


def make_tiny(kind: str, out: str | Path, seed: int = 0) -> Path:
    """Write a tiny checkpoint of ``kind`` (``llava`` or ``encoder-decoder``) to ``out``."""
    if kind == "llava":
        return make_tiny_llava(out, seed)
    if kind == "encoder-decoder":
        return make_tiny_encoder_decoder(out, seed)
    raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {', '.join(KINDS)}")
