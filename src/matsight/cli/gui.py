"""``matsight gui``: the local web app (``pip install 'matsight[gui]'``)."""

from pathlib import Path
from typing import Annotated

import typer

from ._common import echo, user_errors


@user_errors
def gui(
    data: Annotated[
        Path, typer.Option("--data", "-d", help="Data folder: the GUI reads and writes only inside it.")
    ] = Path("."),
    host: Annotated[
        str, typer.Option(help="Interface to serve on. Anything but 127.0.0.1 exposes your files and jobs.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port (0 = any free one; a busy port falls back to a free one).")
    ] = 8765,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the page in the browser.")
    ] = True,
):
    """Local web app: tem analysis, fuse/restore training with live curves, a volume slice viewer."""
    from .._errors import InputError

    try:
        from ..gui.server import LOOPBACK, serve
    except ImportError as exc:
        raise InputError(
            f"the GUI needs the gui extra ({exc.name} missing): pip install 'matsight[gui]'"
        ) from None
    if host not in LOOPBACK:
        typer.echo(
            f"warning: serving on {host} over plain HTTP: anyone on the network who sees the address "
            f"(it holds the access token) can read files in {data} and start jobs; use the default "
            "127.0.0.1 unless you trust the network",
            err=True,
        )
    serve(
        data,
        host=host,
        port=port,
        open_browser=browser,
        # the address holds this launch's access token: only who sees it can use the GUI
        ready=lambda url: echo(f"matsight gui: {url}  (Ctrl-C stops)"),
    )
