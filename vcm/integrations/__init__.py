"""Plug-ins that put vcm codecs into other frameworks' own data paths (detectron2).

Each submodule imports its framework only when used; ``import vcm.integrations`` is free.
"""
