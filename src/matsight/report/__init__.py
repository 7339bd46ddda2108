"""Figures and self-contained HTML reports for every run."""

from .html import Report

__all__ = ["Report"]
