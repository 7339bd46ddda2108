"""Checkpoints as safetensors weights with the JSON config in the file's metadata.

One self-describing file: ``load_checkpoint`` rebuilds everything from it and never unpickles.
Several state dicts (generator, critics, optimisers' tensors) can share one file under prefixes.
"""

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from .._atomic import atomic_path
from .._errors import InputError

_SEP = "/"


def _flatten(groups):
    flat = {}
    for prefix, state in groups.items():
        for key, tensor in state.items():
            flat[f"{prefix}{_SEP}{key}"] = tensor.detach().contiguous().cpu()
    return flat


def save_checkpoint(path, groups, meta):
    """Write ``groups`` (``{name: state_dict}``) and ``meta`` (JSON-serialisable dict) atomically.

    Parameters
    ----------
    path : str or Path
        Destination ``.safetensors`` file.
    groups : dict of str to dict of str to torch.Tensor
        E.g. ``{"generator": G.state_dict(), "critic": D.state_dict()}``. Only tensors are stored;
        non-tensor optimiser state (step counts, hyper-parameters) belongs in ``meta``.
    meta : dict
        Config, iteration, seed, metrics... stored as JSON in the safetensors header.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(_flatten(groups), str(tmp), metadata={"matsight": json.dumps(meta)})
    return path


def load_checkpoint(path, device="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    groups : dict of str to dict of str to torch.Tensor
    meta : dict
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}; give the run folder of a finished training")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            groups = {}
            for key in f.keys():
                prefix, _, name = key.partition(_SEP)
                groups.setdefault(prefix, {})[name] = f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InputError(
            f"{path} is not a readable matsight checkpoint ({exc}); retrain or pick another file"
        ) from exc
    if "matsight" not in header:
        raise InputError(f"{path} has no matsight metadata; it was not written by matsight")
    try:
        meta = json.loads(header["matsight"])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise InputError(
            f"{path} has damaged matsight metadata (not a JSON object); retrain or pick another file"
        )
    return groups, meta
