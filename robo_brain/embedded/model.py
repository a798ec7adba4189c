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
        pos_scale: The ViT's (learned) patch position embeddings start as sine-cosine embeddings of
            the patch centre in pixels (:func:`patch_position_embeddings`) times this (0: the
            default random initialisation).
        coord_scale: The decoder's (tied input/output) embeddings of the pixel-coordinate tokens
            (:data:`~robo_brain.embedded.tokenizer.COORD_TOKENS`) start as sine-cosine embeddings of
            the value at the *same* wavelengths (:func:`coordinate_embeddings`) times this (0:
            random). Neighbouring pixels start with similar embeddings and logits, and the position
            carried by an attended patch maps *linearly* onto the logit of its coordinate: with
            unrelated frequencies on the two sides the decoder attended to the right patch within
            ~1 000 steps but still wrote chance-level coordinates (a nonlinear conversion to learn).
        readout_init: Start the path encoder patch position -> cross-attention heads 0 (column)
            and 1 (row) -> coordinate logits as a pass-through (:func:`init_coordinate_readout`)
            instead of a product of small random matrices. Off by default: measured, it flooded the
            residual stream with position (validation loss 1.10 vs 0.75 at step 750) and the
            coordinates were no better. Needs ``enc_hidden <= dec_hidden`` and 2 decoder heads.
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
    readout_init: bool = False

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
        if self.readout_init and (self.enc_hidden > self.dec_hidden or self.dec_heads < 2):
            raise ValueError(f"ModelConfig.readout_init needs enc_hidden <= dec_hidden and dec_heads >= 2, got "
                             f"{self.enc_hidden}, {self.dec_hidden}, {self.dec_heads}")
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
        with torch.no_grad():
            emb = model.encoder.embeddings.position_embeddings
            emb[0, 0].zero_()
            emb[0, 1:] = c.pos_scale * torch.from_numpy(
                patch_position_embeddings(c.image_size, c.patch_size, c.enc_hidden)).float()
    coords = coord_token_ids(tok)
    if c.coord_scale > 0 and coords:
        with torch.no_grad():
            wte = model.decoder.get_input_embeddings().weight
            wte[coords] = c.coord_scale * torch.from_numpy(coordinate_embeddings(
                len(coords), c.dec_hidden, c.enc_hidden, c.patch_size, c.image_size)).float()
    if c.readout_init and coords:
        init_coordinate_readout(model, c)
    gen = model.generation_config
    gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id = tok.bos_token_id, tok.pad_token_id, \
        tok.eos_token_id
    processor = ViTImageProcessor(do_resize=False, size={"height": c.image_size, "width": c.image_size},
                                  image_mean=[IMAGE_MEAN] * 3, image_std=[IMAGE_STD] * 3)
    return model, tok, processor


def wavelengths(n: int, shortest: float, longest: float) -> np.ndarray:
    """``n`` wavelengths (pixels) geometric from ``shortest`` to ``longest``."""
    return shortest * (longest / shortest) ** (np.arange(n) / max(1, n - 1))


def sincos(values: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """``[sin, cos](2 pi value / wavelength)``: ``len(values) x 2 len(waves)``."""
    angles = np.asarray(values, dtype=np.float64)[:, None] * (2 * np.pi / waves)[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def shared_waves(enc_hidden: int, patch_size: int, image_size: int) -> np.ndarray:
    """The wavelengths (pixels) that the encoder's patch positions and the decoder's coordinate tokens share:
    ``enc_hidden / 4`` per axis, from two patches to four image widths."""
    return wavelengths(enc_hidden // 4, 2.0 * patch_size, 4.0 * image_size)


def patch_position_embeddings(image_size: int, patch_size: int, enc_hidden: int) -> np.ndarray:
    """Position embeddings of the ViT patches (row-major): half the channels a sine-cosine of the patch
    centre's column **in pixels**, half of its row, at :func:`shared_waves`."""
    grid = image_size // patch_size
    centre = (np.arange(grid) + 0.5) * patch_size - 0.5
    rows, cols = np.meshgrid(centre, centre, indexing="ij")
    waves = shared_waves(enc_hidden, patch_size, image_size)
    return np.concatenate([sincos(cols.reshape(-1), waves), sincos(rows.reshape(-1), waves)], axis=1)


def coordinate_embeddings(n: int, dec_hidden: int, enc_hidden: int, patch_size: int, image_size: int) -> np.ndarray:
    """Embeddings ``n x dec_hidden`` of the coordinate values ``0 .. n-1``: a sine-cosine at the encoder's
    :func:`shared_waves` (so a linear map reads an attended patch's position out as a coordinate
    logit peaked at the patch centre), then finer wavelengths (3 px up to two patches) for the
    position inside a patch, which the model reads from the patch content."""
    waves = shared_waves(enc_hidden, patch_size, image_size)
    coarse = sincos(np.arange(n), waves)[:, :dec_hidden]
    rest = (dec_hidden - coarse.shape[1]) // 2
    fine = sincos(np.arange(n), wavelengths(rest, 3.0, 2.0 * patch_size)) if rest > 0 else np.zeros((n, 0))
    out = np.zeros((n, dec_hidden))
    out[:, :coarse.shape[1] + fine.shape[1]] = np.concatenate([coarse, fine], axis=1)
    return out


def init_coordinate_readout(model, c: ModelConfig) -> None:  # noqa: ANN001 - VisionEncoderDecoderModel
    """Initialise the encoder-to-decoder projection and every decoder cross-attention layer so that the
    patch position embeddings reach the coordinate-token logits through heads 0 and 1 with unit gain.

    * ``enc_to_dec_proj`` (when the widths differ): identity into the first ``enc_hidden`` decoder
      channels (column and row sine-cosines of :func:`patch_position_embeddings` keep their channels).
    * value projection of head 0: the column channels of the ``head_dim / 2`` shortest shared
      wavelengths (sine and cosine); head 1: the same for the row.
    * output projection: both heads' values onto the sine-cosine channels of the same wavelengths
      in the coordinate-token embeddings (:func:`coordinate_embeddings`).

    A head that attends to a patch then adds that patch's column (head 0) or row (head 1) to the
    residual stream in the coordinate-token basis, so the tied output layer's logits peak at it;
    training (:class:`~robo_brain.embedded.train.GroundingLoss`) teaches where to look. All other
    weights keep their random initialisation; the model is an ordinary ``VisionEncoderDecoderModel``.
    """
    import torch

    n_waves = c.enc_hidden // 4  # per axis: sin block then cos block, column then row
    head_dim = c.dec_hidden // c.dec_heads
    k = min(head_dim // 2, n_waves)
    with torch.no_grad():
        proj = getattr(model, "enc_to_dec_proj", None)  # absent when the widths are equal
        if proj is not None:
            proj.weight.zero_()
            proj.bias.zero_()
            proj.weight[:c.enc_hidden, :c.enc_hidden] = torch.eye(c.enc_hidden)
        for block in model.decoder.transformer.h:
            attn = block.crossattention
            w_v = attn.c_attn.weight[:, c.dec_hidden:]  # Conv1D (in, out): the value half
            attn.c_attn.bias[c.dec_hidden:c.dec_hidden + 2 * head_dim] = 0.0
            w_o = attn.c_proj.weight
            for head, offset in ((0, 0), (1, 2 * n_waves)):  # head 0: columns, head 1: rows
                cols = slice(head * head_dim, (head + 1) * head_dim)
                w_v[:, cols] = 0.0
                w_o[cols, :] = 0.0
                for j in range(k):
                    for part in (0, 1):  # sin, cos
                        src = offset + part * n_waves + j
                        w_v[src, head * head_dim + part * k + j] = 1.0
                        w_o[head * head_dim + part * k + j, part * n_waves + j] = 1.0


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
