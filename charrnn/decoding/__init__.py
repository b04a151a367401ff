"""Decoding, for every model: the step (step.py: prime with the prefix in one pass, then one cheap step per
character, the model's distribution after it), the sampler (sample.py: temperature, top-k, top-p and the draw), and
sequences decoded together with their own options and form (batch.py), on numpy or torch (backends.py)."""
from . import backends
from .batch import Batch, pieces
from .sample import Sampler, Uniforms, without_prior
from .step import Stepper, prime

__all__ = ["Batch", "backends", "Sampler", "Stepper", "Uniforms", "pieces", "prime", "without_prior"]
