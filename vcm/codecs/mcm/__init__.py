"""MCM (Li et al., "You Can Mask More For Extremely Low-Bitrate Image Compression")."""
