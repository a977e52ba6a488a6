"""The `srcnn` command's subcommands, on top of the library."""
