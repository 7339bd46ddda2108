"""``matsight gui``: a local web app over the tem, fuse and restore workflows (``gui`` extra).

Presentation only — every result comes from the library functions the CLI calls. Start it with
``matsight gui --data DIR`` or :func:`matsight.gui.server.serve`.
"""

__all__ = ["serve", "create_app"]


def __getattr__(name):
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
