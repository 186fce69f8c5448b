"""textvae: variational autoencoders over sentences."""

__version__ = "0.1.0"
