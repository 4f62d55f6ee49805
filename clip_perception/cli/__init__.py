"""Thin entry points: each ``main(argv=None)`` parses arguments and calls the library."""
