"""``tem analyze`` on an image layer: FFT, spots, phases and phase maps as layers.

The pixel size is the layer's calibration (its scale in nm, as :mod:`matsight.napari.folders` and napari's
microscope readers set it) or the one typed in. The FFT (the paper's denoised log magnitude) and the spots
(each with its Friedel mate) are shown in reciprocal space, in 1/nm, centred on ``g = 0``; the phase map
(0 = none, k = k-th phase found) lies on the image. Every phase has the colour it has in the tem report.
"""

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, Label, LineEdit, PushButton, Table
from napari.layers import Image, Labels
from napari.viewer import Viewer

from .. import tem
from .._errors import InputError
from ..progress import Progress
from ..tem.config import TemConfig
from ..tem.match import UNKNOWN
from ..tem.report import phase_colors
from ._base import JobWidget, add_or_update, layer_scale_nm

__all__ = ["TemWidget", "spot_points", "SHIPPED"]

SHIPPED = "Li, LiF, Li2O, Li2CO3"
VIEWS = ("image and phase map", "FFT and spots")
TABLE_COLUMNS = ("d_angstrom", "phase", "hkl", "zone", "d_error_percent", "snr")


def spot_points(result):
    """The spots of a :class:`~matsight.tem.predict.TemResult` and their Friedel mates as napari points.

    Returns
    -------
    (ndarray, dict)
        ``(2n, 2)`` positions ``(gy, gx)`` in 1/nm and the Points layer's keyword arguments (features
        ``phase``, ``label``; face colours by phase).
    """
    sp = result.spots
    g = np.column_stack([sp.gy, sp.gx]) if len(sp) else np.zeros((0, 2))
    colors = phase_colors([p.name for p in result.phases])
    phase, label = [], []
    for k, m in enumerate(result.match.matches):
        phase.append(m.phase)
        label.append(m.label if m.phase != UNKNOWN else f"? {sp.d[k]:.3g} Å")
    kwargs = {
        "features": {
            "phase": phase * 2,
            "label": label + [""] * len(label),
        },  # mates unlabelled: less clutter
        "face_color": [colors.get(p, "#999999") for p in phase * 2] or "white",
        "border_color": "white",
        "size": float(max(abs(g).max(initial=0) / 20, 0.05)),
        "units": "1/nm",
        "text": {"string": "{label}", "size": 8, "color": "white", "anchor": "upper_left"},
    }
    return np.concatenate([g, -g]), kwargs


def _phases(text):
    """The phase list typed in the box: shipped names or phase files (YAML/CIF), comma-separated."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise InputError(f"name at least one phase, e.g. {SHIPPED}")
    return names


class TemWidget(JobWidget):
    """Identify phases in the chosen image with :func:`matsight.tem.analyze`."""

    def __init__(self, viewer: Viewer):
        super().__init__(viewer, cancellable=False)
        self.result = None
        self.image = self.layer_choice("image", Image)
        self.pixel_size = LineEdit(label="pixel size (nm)", value="")
        self.calibration = Label(value="")
        self.phases = LineEdit(label="phases", value=SHIPPED)
        default = TemConfig().matching.tolerance
        self.tolerance = FloatSpinBox(label="d tolerance (%)", value=100 * default, min=0.1, max=50, step=0.5)
        self.maps = CheckBox(text="phase maps", value=True)
        self.run_button = PushButton(text="analyse")
        self.view = ComboBox(label="show", choices=list(VIEWS), value=VIEWS[0])
        self.summary = Label(value="")
        self.table = Table(value=[])
        self.extend([
            self.image, self.pixel_size, self.calibration, self.phases, self.tolerance, self.maps,
            self.run_button, *self.footer(), self.view, self.summary, self.table,
        ])  # fmt: skip
        self.image.changed.connect(self._calibration_from_layer)
        self.run_button.changed.connect(self.analyse)
        self.view.changed.connect(self._show_view)
        self._calibration_from_layer()

    def _calibration_from_layer(self, *_):
        layer = self.image.value
        ps = None if layer is None else layer_scale_nm(layer)
        if ps is not None:
            self.pixel_size.value = f"{ps[-1]:.6g}"
            self.calibration.value = f"from the layer's scale: {ps[-2]:.5g} × {ps[-1]:.5g} nm"
        else:
            self.calibration.value = "the layer has no calibration: type the pixel size"

    def _pixel_size(self, layer):
        """The layer's (py, px) while the box shows its value, else the number typed in."""
        ps, text = layer_scale_nm(layer), str(self.pixel_size.value).strip()
        if ps is not None and text == f"{ps[-1]:.6g}":
            return (ps[-2], ps[-1])
        if not text:
            raise InputError("the image has no calibration; type its pixel size in nm (e.g. 0.02)")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise InputError(f"the pixel size must be a positive number of nm (e.g. 0.02), got {text!r}")
        return value

    def analyse(self, *_):
        """Run the analysis in a thread worker and show its layers, table and summary."""
        layer = self.image.value
        try:
            if layer is None:
                raise InputError("open an HRTEM image first")
            data = np.asarray(layer.data)
            if layer.rgb or data.ndim != 2:
                raise InputError(f"{layer.name} is not a single 2D grey image; choose one frame")
            ps, phases, maps = self._pixel_size(layer), _phases(self.phases.value), self.maps.value
            tolerance = self.tolerance.value / 100
        except InputError as exc:
            self.say(f"error: {exc}", error=True)
            return None

        def job(callback):
            callback(Progress(step=0, total=1, message="FFT, spots, matching, maps"))
            return tem.analyze(data, ps, phases, maps=maps, tolerance=tolerance)

        return self.start(job, lambda res: self._show(layer, res), message="analysing")

    def _show(self, layer, res):
        self.result = res
        ny, nx = res.shape
        py, px = res.pixel_size_nm
        sy, sx = 1.0 / (ny * py), 1.0 / (nx * px)
        fft = add_or_update(
            self.viewer, res.fft_display, name=f"{layer.name} FFT", kind=Image, scale=(sy, sx),
            translate=(-(ny // 2) * sy, -(nx // 2) * sx), units="1/nm", colormap="gray",
        )  # fmt: skip
        pts, kw = spot_points(res)
        if f"{layer.name} spots" in self.viewer.layers:
            self.viewer.layers.remove(f"{layer.name} spots")
        spots = self.viewer.add_points(pts, name=f"{layer.name} spots", **kw)
        self._groups = {"FFT and spots": [fft, spots], "image and phase map": [layer]}
        if res.maps is not None:
            colors = phase_colors([p.name for p in res.phases])
            lut = {k + 1: colors[n] for k, n in enumerate(res.maps.phase_names)}
            maps = add_or_update(
                self.viewer, res.maps.labels.astype(np.uint8), name=f"{layer.name} phase map", kind=Labels,
                scale=layer.scale[-2:], translate=layer.translate[-2:],
                colormap={**lut, 0: "transparent", None: "transparent"},
            )  # fmt: skip
            maps.opacity = 0.45
            self._groups["image and phase map"].append(maps)
        self.table.value = [[r.get(c, "") for c in TABLE_COLUMNS] for r in res.table()]
        self.table.column_headers = TABLE_COLUMNS
        s = res.summary()
        areas = "; ".join(
            f"{k[len('area fraction ') :]} {v:.1%}" for k, v in s.items() if k.startswith("area")
        )
        self.summary.value = f"phases found: {s['phases found']} — {s['identification']}" + (
            f"\narea: {areas}" if areas else ""
        )
        self.say(f"{s['spots (Friedel pairs)']} spots, {s['unknown spots']} unknown, {s['seconds']} s")
        self._show_view()

    def _show_view(self, *_):
        groups = getattr(self, "_groups", None)
        if not groups:
            return
        for name, layers in groups.items():
            for lay in layers:
                if lay in self.viewer.layers:
                    lay.visible = name == self.view.value
        shown = [lay for lay in groups[self.view.value] if lay in self.viewer.layers]
        # the FFT view zooms on the spots (the FFT's corners hold no spacing searched); the image view on it
        fit = shown[-1:] if self.view.value == VIEWS[1] and len(shown[-1].data) else shown[:1]
        if hasattr(self.viewer, "fit_to_view"):  # napari >= 0.6.2; earlier ones fit every layer
            self.viewer.fit_to_view(layers=fit, margin=0.15 if self.view.value == VIEWS[1] else 0.05)
        else:
            self.viewer.reset_view()
