"""EMIC (Dai et al. 2025): mask-before-encode transformer codec. Work in progress (issue 3):
position-indexed attention is in :mod:`vcm.codecs.emic.attention`."""
