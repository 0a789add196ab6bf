"""Preference alignment of diffusion models: train a small denoiser, align it to a reward or to preferences,
search at inference time, and measure how far each method moved it."""
