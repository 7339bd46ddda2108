"""Microstructure metrics of labelled 2D/3D images: plain, vectorised functions over numpy arrays.

Conventions (stated once, used everywhere below):

- ``labels`` are non-negative integers, ZYX (3D) or YX (2D); every distinct value is a phase.
- ``spacing`` is the voxel size per axis (one number for cubic voxels); lengths, areas and densities are then
  in those units. Without it everything is in voxel units.
- Surfaces are counted on voxel faces *inside* the volume: faces on the outer boundary of the box are not
  interfaces (they border no second phase). TauFactor's ``face_counting`` method uses the same convention,
  so :func:`specific_surface_area` and :func:`interfacial_area` agree with ``taufactor.metrics`` exactly.
- Triple phase boundary: TauFactor's definition (see :func:`triple_phase_boundary`).
- Two-point correlations are non-periodic (zero-padded FFT) and unbiased: each lag is divided by the
  number of voxel pairs inside the volume at that lag, like ``porespy.metrics.two_point_correlation``.

By topic: :mod:`.phases` (volume fractions), :mod:`.surfaces` (specific surface and interfacial areas, triple
phase boundary), :mod:`.topology` (Euler density), :mod:`.correlations` (two-point correlations),
:mod:`.chords` (chord lengths), :mod:`.fourier` (FFT profiles) and :mod:`.summaries` (sub-volume statistics,
the JSON summary). Every public name is importable from here.
"""

from .chords import ChordLengths, chord_length_distribution, chord_lengths
from .correlations import Correlation, two_point_correlation
from .fourier import FFTProfile, fft_orientation_ratio, radial_fft_profile
from .phases import volume_fraction
from .summaries import subvolume_statistics, summary
from .surfaces import interfacial_area, specific_surface_area, triple_phase_boundary
from .topology import euler_density

__all__ = [
    "ChordLengths",
    "Correlation",
    "FFTProfile",
    "chord_length_distribution",
    "chord_lengths",
    "euler_density",
    "fft_orientation_ratio",
    "interfacial_area",
    "radial_fft_profile",
    "specific_surface_area",
    "subvolume_statistics",
    "summary",
    "triple_phase_boundary",
    "two_point_correlation",
    "volume_fraction",
]
