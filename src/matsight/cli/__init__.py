"""The ``matsight`` command line: one typer app; every command only calls library functions.

Subcommand groups live in sibling modules (``metrics``, ``fuse``, ``restore``, ``tem``, ...); each imports the
heavy library code inside its command bodies so ``matsight --help`` stays fast.
"""

from pathlib import Path
from typing import Annotated

import typer

from ._common import check_outputs, echo, user_errors

app = typer.Typer(
    name="matsight",
    help="Images materials scientists can get → the images and numbers they need.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
@user_errors
def _root(
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads",
            envvar="MATSIGHT_THREADS",
            help="CPU threads for torch: a number, or auto (default: the cores other processes leave free).",
            show_default=False,
        ),
    ] = None,
):
    """Images materials scientists can get → the images and numbers they need."""
    import os

    from ..nn.device import parse_threads

    n = parse_threads(threads)  # checked here, applied when a command starts torch work
    # inherited by the GUI's and dask's worker processes
    os.environ["MATSIGHT_THREADS"] = "auto" if n is None else str(n)


@app.command()
@user_errors
def info():
    """Versions, torch device and which optional packages are present."""
    from ..info import system_info

    for key, value in system_info().items():
        echo(f"{key:<22} {value}")


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the report and data.")] = Path(
        "matsight-demo"
    ),
    parts: Annotated[
        str, typer.Option(help="Comma-separated parts to run (default: all available).")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed for the generated data.")] = 0,
):
    """Run every method on data matsight generates itself and write an HTML report."""
    from ..demos import run_demo

    check_outputs(folders=[("--out", out)])
    report = run_demo(out, parts=parts, seed=seed)
    echo(f"report: {report.resolve()}")


def _register():
    # a module exposing ``app`` (typer.Typer) becomes a group;
    # one exposing a function of its own name becomes a command
    for name in ("metrics", "fuse", "restore", "tem", "segment", "gui"):
        try:
            module = __import__(f"{__name__}.{name}", fromlist=["app"])
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        sub = getattr(module, "app", None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        elif callable(getattr(module, name, None)):
            app.command(name=name)(getattr(module, name))


_register()


def _flags_as_flags(command):
    """Show on/off options as flags: typer labels them ``<bool>``, which reads as if they took a value."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option(command.context_class(command))
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_as_flags(sub)
    return command


def command():
    """The click command behind :data:`app`, as the console script runs it."""
    return _flags_as_flags(typer.main.get_command(app))


def main():
    """Entry point of the ``matsight`` console script."""
    command()()
