"""SegPIC (Liu et al., ECCV 2024): region-adaptive transform with masks as privileged information."""
