"""`fedgov sim`: run simulated federations through Flower's Simulation Engine."""

import typer

app = typer.Typer(help="Run simulated federations on one machine (Flower Simulation Engine).", no_args_is_help=True)
