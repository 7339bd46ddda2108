"""The napari plugin: matsight's methods where users already paint labels (``pip install matsight[napari]``).

Widgets (Plugins menu → matsight), each a thin face over the library like the CLI and the web GUI:

- :class:`~matsight.napari.segment_widget.SegmentWidget` — train a segmenter from strokes painted in a
  Labels layer on an Image layer, see the prediction as a Labels layer, retrain on new strokes;
- :class:`~matsight.napari.tem_widget.TemWidget` — ``tem analyze`` on an image layer: FFT, spots as points,
  phases in a table, phase maps as labels, the pixel size taken from the layer's scale;
- :class:`~matsight.napari.open_widget.OpenWidget` — any matsight output folder as layers with their
  calibration (also by drag and drop, through :mod:`~matsight.napari.reader`);
- :class:`~matsight.napari.jobs_widget.JobsWidget` — fuse / restore training and application on layers,
  with progress, in the background, cancellable.

Long work runs in napari thread workers fed by :mod:`matsight.progress` callbacks
(:mod:`~matsight.napari.workers`). The manifest is ``napari.yaml`` beside this file (entry point
``napari.manifest``).
"""
