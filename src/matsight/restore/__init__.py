"""restore — learned restoration of grayscale tomography with InDI (``papers/indi_4d_nanotomography.txt``).

The face of the method:

- :func:`train` — ``train(data, out_dir, *, config, budget=None, callback=None)``: an InDI model from one
  registered LQ/HQ pair (``(lq_up, hq)`` arrays or a pair folder of ``matsight restore register``);
- :func:`predict` — enhance an LQ slice or volume (:func:`~matsight.restore.predict.predict_path` for files
  and folders of time steps);
- :func:`evaluate` — score an ``apply`` output folder against an HQ reference (PSNR, SSIM, SIFT, FWHM, CNR);
- :class:`RestoreConfig` — the settings (``model`` / ``training`` / ``inference``), built by
  :func:`~matsight.restore.config.make_config`;
- :func:`load` — a trained model folder → ``(net, meta)``.

Modules: :mod:`~matsight.restore.config`, :mod:`~matsight.restore.networks` (the network F),
:mod:`~matsight.restore.losses` (the InDI objective), :mod:`~matsight.restore.indi` (the N-step sampler),
:mod:`~matsight.restore.train`, :mod:`~matsight.restore.predict`, :mod:`~matsight.restore.evaluate`; the
method's own parts :mod:`~matsight.restore.register` (pair preparation), :mod:`~matsight.restore.pair_io`
(pair folders), :mod:`~matsight.restore.pairs` (simulated LQ scans) and :mod:`~matsight.restore.steps` (the
automatic step count).
"""

from .config import RestoreConfig
from .evaluate import evaluate
from .networks import load_model as load
from .predict import predict
from .train import train

__all__ = ["train", "predict", "evaluate", "RestoreConfig", "load"]
