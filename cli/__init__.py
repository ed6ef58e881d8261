"""The root `fedgov` command: the top of the stack, mounting each layer's CLI group."""
