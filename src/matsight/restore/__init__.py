"""restore — learned restoration of grayscale tomography with InDI (``papers/indi_4d_nanotomography.txt``).

Modules: :mod:`~matsight.restore.register` (pair preparation), :mod:`~matsight.restore.pairs` (simulated LQ
scans), :mod:`~matsight.restore.config` (presets), :mod:`~matsight.restore.indi` (training target,
reverse-Huber loss, N-step sampler),
:mod:`~matsight.restore.train`, :mod:`~matsight.restore.enhance` (slices, volumes, time series, data
consistency), :mod:`~matsight.restore.evaluate` (quality report).
Importing this package does not import torch.
"""
