"""The embedded model: a small ViT encoder + GPT-2 decoder (``VisionEncoderDecoderModel``), built from configs.

The checkpoint folder is standard: ``config.json`` + ``generation_config.json`` +
``model.safetensors`` (``save_pretrained``), the byte-level tokenizer (``tokenizer.json``) and a
``ViTImageProcessor`` (``preprocessor_config.json``: no resize, rescale to [0, 1], normalise with
mean = std = 0.5). :class:`~robo_brain.backends.transformers_backend.TransformersBackend` loads it
by path and prompts the decoder with ``Instruction: ...\\n``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from robo_brain.embedded.tokenizer import coord_token_ids, make_char_tokenizer

logger = logging.getLogger(__name__)

IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the embedded model.

    Attributes:
        image_size: Side of the (square) input image in pixels; the simulator renders 128.
        patch_size: ViT patch side in pixels.
        enc_hidden: ViT width.
        enc_layers: ViT depth.
        enc_heads: ViT attention heads.
        dec_hidden: GPT-2 width.
        dec_layers: GPT-2 depth.
        dec_heads: GPT-2 attention heads.
        n_positions: Longest decoder sequence (start token + prompt + answer).
        dropout: Dropout of both halves.
        pos_scale: The ViT's (learned) patch position embeddings start as 2D sine-cosine embeddings
            times this (0: the default random initialisation). Smooth, explicit coordinates let the
            decoder read where an attended patch is from the start, which pixel keypoints need.
        coord_scale: The decoder's (tied input/output) embeddings of the pixel-coordinate tokens
            (:data:`~robo_brain.embedded.tokenizer.COORD_TOKENS`) start as 1D sine-cosine embeddings
            of the value times this (0: random). Neighbouring pixels then start with similar
            embeddings and logits, so a coordinate is learned as an ordered quantity, not 128
            unrelated classes.
    """

    image_size: int = 128
    patch_size: int = 8
    enc_hidden: int = 192
    enc_layers: int = 3
    enc_heads: int = 3
    dec_hidden: int = 256
    dec_layers: int = 3
    dec_heads: int = 4
    n_positions: int = 640
    dropout: float = 0.0
    pos_scale: float = 0.5
    coord_scale: float = 0.03

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"ModelConfig.image_size {self.image_size} must be a multiple of patch_size "
                             f"{self.patch_size}")
        for name, heads in (("enc_hidden", self.enc_heads), ("dec_hidden", self.dec_heads)):
            if heads < 1 or getattr(self, name) % heads:
                raise ValueError(f"ModelConfig.{name} {getattr(self, name)} must be a multiple of its heads {heads}")
        for name in ("enc_layers", "dec_layers", "n_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.enc_hidden % 4 or self.dec_hidden % 2 or self.pos_scale < 0 or self.coord_scale < 0:
            raise ValueError(f"ModelConfig needs enc_hidden divisible by 4, dec_hidden even and pos_scale, "
                             f"coord_scale >= 0, got {self.enc_hidden}, {self.dec_hidden}, {self.pos_scale}, "
                             f"{self.coord_scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        """Plain dict (for ``training_args.json``)."""
        return asdict(self)


def build_model(config: ModelConfig, seed: int = 0):  # noqa: ANN201 - (model, tokenizer, processor)
    """A randomly initialised ``(VisionEncoderDecoderModel, tokenizer, ViTImageProcessor)`` from ``config``."""
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(seed)
    tok = make_char_tokenizer()
    c = config
    enc = ViTConfig(hidden_size=c.enc_hidden, intermediate_size=4 * c.enc_hidden, num_hidden_layers=c.enc_layers,
                    num_attention_heads=c.enc_heads, image_size=c.image_size, patch_size=c.patch_size,
                    hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout)
    dec = GPT2Config(vocab_size=len(tok), n_embd=c.dec_hidden, n_layer=c.dec_layers, n_head=c.dec_heads,
                     n_positions=c.n_positions, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id, resid_pdrop=c.dropout, embd_pdrop=c.dropout,
                     attn_pdrop=c.dropout)
    vcfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    vcfg.decoder_start_token_id = tok.bos_token_id
    vcfg.pad_token_id = tok.pad_token_id
    vcfg.eos_token_id = tok.eos_token_id
    model = VisionEncoderDecoderModel(config=vcfg)
    if c.pos_scale > 0:
        grid = c.image_size // c.patch_size
        with torch.no_grad():
            emb = model.encoder.embeddings.position_embeddings
            emb[0, 0].zero_()
            emb[0, 1:] = c.pos_scale * torch.from_numpy(sincos_2d(grid, c.enc_hidden)).float()
    coords = coord_token_ids(tok)
    if c.coord_scale > 0 and coords:
        with torch.no_grad():
            wte = model.decoder.get_input_embeddings().weight
            wte[coords] = c.coord_scale * torch.from_numpy(sincos_1d(len(coords), c.dec_hidden)).float()
    gen = model.generation_config
    gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id = tok.bos_token_id, tok.pad_token_id, \
        tok.eos_token_id
    processor = ViTImageProcessor(do_resize=False, size={"height": c.image_size, "width": c.image_size},
                                  image_mean=[IMAGE_MEAN] * 3, image_std=[IMAGE_STD] * 3)
    return model, tok, processor


def sincos_1d(n: int, dim: int, shortest: float = 4.0, longest: float = 512.0) -> np.ndarray:
    """Sine-cosine embeddings ``n x dim`` of the values ``0 .. n-1``, wavelengths geometric from
    ``shortest`` to ``longest`` (in value units)."""
    wavelengths = shortest * (longest / shortest) ** (np.arange(dim // 2) / max(1, dim // 2 - 1))
    angles = np.arange(n)[:, None] * (2 * np.pi / wavelengths)[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(grid: int, dim: int) -> np.ndarray:
    """2D sine-cosine position embeddings ``grid*grid x dim`` in ViT patch order (row-major): half the
    channels encode the row, half the column."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim // 4))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def enc(pos: np.ndarray) -> np.ndarray:
        out = pos.reshape(-1, 1) * omega[None, :]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([enc(rows), enc(cols)], axis=1)


def pixel_values(images: np.ndarray):  # noqa: ANN201 - torch.Tensor
    """Normalise a batch of RGB uint8 ``N x H x W x 3`` images exactly as the saved ``ViTImageProcessor`` does."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - IMAGE_MEAN) / IMAGE_STD


def save_checkpoint(path: str | Path, model, tokenizer, processor) -> Path:  # noqa: ANN001 - transformers objects
    """Write the model (safetensors), tokenizer and image processor into one folder."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def load_checkpoint(path: str | Path):  # noqa: ANN201 - (model, tokenizer, processor)
    """Load ``(model, tokenizer, processor)`` from a checkpoint folder (local files only)."""
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(path, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    proc = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    return model, tok, proc


def n_parameters(model) -> int:  # noqa: ANN001 - torch module
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
