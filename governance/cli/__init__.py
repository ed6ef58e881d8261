"""Command-line groups of the governance library, mounted by the root `fedgov` command."""
