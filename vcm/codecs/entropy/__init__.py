"""Entropy models shared by the learned codecs (one ChARM for every codec)."""

from vcm.codecs.entropy.charm import ChARM, conv_net, token_mlp
from vcm.codecs.entropy.indexes import build_indexes

__all__ = ["ChARM", "build_indexes", "conv_net", "token_mlp"]
