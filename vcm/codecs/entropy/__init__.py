"""Entropy models shared by the learned codecs (one ChARM for every codec)."""

from vcm.codecs.entropy.charm import ChARM, conv_net, token_mlp

__all__ = ["ChARM", "conv_net", "token_mlp"]
