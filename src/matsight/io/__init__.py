"""Reading and writing images, volumes and microscope files, with calibration in nm.

- :func:`read_volume`, :func:`read_labels`, :func:`validate_labels`, :func:`read_image`, :func:`read_spacing`,
  :func:`write_volume` — tif (ImageJ/OME), npy, zarr (lazy), png; ZYX order; atomic writers.
- :func:`read_microscope`, :func:`iter_frames`, :class:`MicroscopeImage` — dm3/dm4, mrc, ser/emi, emd (via
  rosettasciio, the ``tem`` extra) and calibrated tifs; pixel size in nm per axis; stacks frames first.
- :func:`to_nm`, :func:`to_inv_nm`, :func:`parse_length_unit` — unit conversion (every spelling, one table).
- :class:`Calibration`, :func:`read_calibration`, :func:`write_calibration` — calibration files (cal.json).
"""

from .calibration import Calibration, read_calibration, write_calibration
from .microscope import MICROSCOPE_EXTS, MicroscopeImage, iter_frames, read_microscope
from .units import is_reciprocal, parse_length_unit, to_inv_nm, to_nm
from .volumes import read_image, read_labels, read_spacing, read_volume, validate_labels, write_volume

__all__ = [
    "MICROSCOPE_EXTS",
    "Calibration",
    "MicroscopeImage",
    "is_reciprocal",
    "iter_frames",
    "parse_length_unit",
    "read_calibration",
    "read_image",
    "read_labels",
    "read_microscope",
    "read_spacing",
    "read_volume",
    "to_inv_nm",
    "to_nm",
    "validate_labels",
    "write_calibration",
    "write_volume",
]
