"""Backbones, reward models and how texts become tokens."""
