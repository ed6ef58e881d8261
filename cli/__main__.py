"""`python -m fedgov` is the `fedgov` command."""

from fedgov.cli import main

main()
