"""Shared network parts (torch): U-Net, overlapped tiled inference, checkpoints, device selection.

Importing :mod:`matsight.nn` imports torch; nothing else in the package does so at import time.
"""
