"""The ``snr`` command group: wires the commands of this package together."""

from __future__ import annotations

import click

from .. import __version__
from .analyze import analyze, inspect
from .base import CONTEXT, SnrGroup, common_flags
from .compare import check, compare
from .correlate import correlate
from .report import report


@click.group(cls=SnrGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="snr")
@common_flags
def main() -> None:
    """Node-level SNR optimality (S) and SNR gain (G) of a trained network, after Norridge (2021).

    The figures need only unlabelled data. They are descriptive: whether they tell
    you more about generalisation than cheap baselines do is an open question.
    """


for _command in (analyze, inspect, compare, check, correlate, report):
    main.add_command(_command)
