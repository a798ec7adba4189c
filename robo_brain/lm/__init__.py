"""Brain v2: a pretrained language model (SmolLM2-135M-Instruct + a LoRA adapter) that plans from the
scene listing of :mod:`robo_brain.perception` and the instruction, with decoding constrained to the
skill language and the names the brain sees. See ``models/brain_lm/README.md``."""
