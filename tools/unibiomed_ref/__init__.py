"""Reference implementation of the UniBiomed model family (PyTorch, Python side only).

Readable, config-driven modules for every part of the model (InternViT vision encoder and
projector, Qwen2 decoder, grounding projector, SAM2), the checkpoint loader, the TorchScript
export and the reference inference pipeline that the C++ engine is tested against.
See README.md in this folder for the conventions every module follows.
"""
