"""The `layerctl` command group: wiring only.

Each command lives in its own module under `layerctl.commands` and is imported only when it is
invoked, so `layerctl validate` never pays for NumPy training code or rich progress bars.
Errors raised as `LayerctlError` become one line per problem on stderr and exit code 1;
Ctrl-C becomes exit code 130. No traceback ever reaches a user for their own mistakes.
"""

from __future__ import annotations

import importlib
import sys

import click

from layerctl import __version__
from layerctl.errors import LayerctlError

# command name -> (module under layerctl.commands, one-line help for `layerctl --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "Check specs for errors (files or folders), for CI and pre-commit."),
    "shapes": ("shapes", "Print a Keras-style summary: output shapes and parameter counts."),
    "schema": ("schema", "Print the JSON Schema of the spec format (for editors)."),
    "train": ("train", "Train a model spec on data and write a run folder."),
    "evaluate": ("evaluate", "Compute loss and metrics of trained weights on data."),
    "predict": ("predict", "Run trained weights on inputs and write the outputs."),
    "pad": ("pad", "Tokenize and pad text corpora into arrays, like Keras pad_sequences."),
    "export": ("export", "Hand a trained model to ONNX Runtime or Keras."),
    "gradcheck": ("gradcheck", "Check a spec's gradients against float64 central differences."),
    "import": ("import_", "Turn a Keras model, config or Keras code (Keras 1 too) into a spec."),
    "plot": ("plot", "Draw a spec's model as a diagram (SVG or HTML)."),
    "report": ("report", "Rebuild a run's report page, or compare several runs."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)  # names only: `layerctl --help` imports no command module

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = self._module(name)
        return None if module is None else module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if not rows:
            return
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        """Run the subcommand; user errors become located lines and an exit code, never a
        traceback; Ctrl-C exits 130 (commands save what they can before re-raising it)."""
        try:
            return super().invoke(ctx)
        except LayerctlError as error:
            report_error(error)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader went away (`| head -1`): nothing more to say
            _silence_closed_streams()
            ctx.exit(0)
        except OSError as error:  # disk full, read-only file system, permission, ...
            click.echo(os_error_line(error), err=True)
            ctx.exit(1)
        except MemoryError:
            click.echo("out of memory: this machine cannot hold what the command needs "
                       "(try a smaller --batch-size, model or data)", err=True)
            ctx.exit(1)
        except Exception as error:
            if not interrupted(error):
                raise
            click.echo("interrupted", err=True)  # Ctrl-C inside an import or a class body
            ctx.exit(130)

    @staticmethod
    def _module(name: str):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"layerctl.commands.{COMMANDS[name][0]}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="layerctl")
def cli() -> None:
    """Build, check and train neural networks from YAML specs, with Keras semantics.

    \b
    Example:
      layerctl validate specs/
      layerctl shapes specs/mnist_cnn.yaml
      layerctl train specs/digits_cnn.yaml
    """


def _silence_closed_streams() -> None:
    """Point stdout and stderr at /dev/null, so flushing them at exit raises nothing again."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # not a real file (e.g. captured by a test runner)
            pass


def report_error(error: LayerctlError) -> None:
    """Print every problem of `error` on stderr, one line each."""
    for problem in error.problems:
        click.echo(problem.line(), err=True)


def os_error_line(error: OSError) -> str:
    """One line for an OSError: the file it concerns, then the system's reason."""
    reason = error.strerror or str(error) or type(error).__name__
    files = [f for f in (error.filename, error.filename2) if f is not None]
    return f"{' -> '.join(map(str, files))}: {reason}" if files else reason


def interrupted(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt caused `error`. Python wraps one raised while a class is
    created (`RuntimeError: Error calling __set_name__ ...`, as in pydantic's models when
    Ctrl-C lands during an import), and such an error is the user's Ctrl-C, not a bug."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def main() -> None:
    """The console entry point. Ctrl-C while modules load (before a command runs) exits 130
    without a traceback too."""
    try:
        from layerctl.runtime import configure_blas

        configure_blas()  # before anything imports NumPy (see layerctl.runtime)
        cli()
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as error:
        if not interrupted(error):
            raise
        click.echo("interrupted", err=True)
        sys.exit(130)
