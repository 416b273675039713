"""GIT-SSIC: group-independent Swin codec (seed-methods section 2). Work in progress (issue 4)."""
