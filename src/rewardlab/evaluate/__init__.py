"""Measuring reward models: metrics, evaluation runs and reports."""
