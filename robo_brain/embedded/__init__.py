"""The brain's embedded default model: a small ViT + GPT-2 ``VisionEncoderDecoderModel`` trained on simulator scenes.

* :mod:`.tokenizer`: a byte-level tokenizer without merges (one token per character), so the
  decoder can copy any object name from the instruction and write any pixel coordinate.
* :mod:`.model`: the model configuration, building it from configs (nothing downloaded) and saving it
  as a standard checkpoint folder that :class:`~robo_brain.backends.transformers_backend.TransformersBackend`
  loads by path.
* :mod:`.dataset`: training examples rendered from the simulator (image, instruction, target text),
  cached on disk.
* :mod:`.augment`: colour stand-in words (teach copying colour names from the instruction).
* :mod:`.train`: ``robo-stack train brain`` (coordinate soft labels, cross-attention grounding loss);
  :mod:`.evaluate`: ``robo-stack eval brain``; :mod:`.refine`: depth snapping of grasp pixels.
"""
