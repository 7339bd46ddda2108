"""The GUI's endpoints, one module per workflow; :mod:`matsight.gui.server` assembles them into the app.

- :mod:`.files`: the data folder (``/api/info``, ``/api/ls``, ``/files/...``);
- :mod:`.jobs`: background jobs (``/api/jobs``);
- :mod:`.tem`, :mod:`.fuse`, :mod:`.restore`: the methods' workflows (``/api/tem/...``, ...);
- :mod:`.volume`: a run folder's history and the volume viewer (``/api/run``, ``/api/volume/...``).

Each module lists its routes in ``ROUTES``; the endpoints read the app's :class:`~.common.Context`
(``request.app.state.ctx``). Settings that a method's config holds are checked by that config
(``make_config``, one-line ``settings_message`` errors → 400); :mod:`.fields` checks the GUI's own fields.
"""
