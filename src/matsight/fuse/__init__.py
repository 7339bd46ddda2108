"""fuse — SuperRes 2D/3D fusion: a low-res 3D label volume + high-res 2D label images → a super-resolved
n-phase 3D volume (WGAN-GP generator with a voxel-wise LR consistency loss).

>>> from matsight import fuse
>>> sorted(fuse.__all__)
['FuseConfig', 'evaluate', 'load', 'make_config', 'predict', 'train']

``train((lr, hr), out_dir, config=make_config("cpu", steps=2000))`` trains a run folder, ``load(out_dir)``
rebuilds its generator, ``predict(out_dir, lr)`` super-resolves a volume of any size, tile by tile, and
``evaluate(sr, hr=hr, lr=lr, out_dir=report)`` compares the result with its inputs as the paper does.
"""

from .config import FuseConfig, make_config
from .evaluate import evaluate
from .predict import predict
from .run import load
from .train import train

__all__ = ["train", "predict", "evaluate", "FuseConfig", "make_config", "load"]
