"""`python -m cli` is the `fedgov` command (what the tests and benchmarks run with the venv's Python)."""

from cli.main import main

main()
