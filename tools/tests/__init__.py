"""Unit tests for the Python reference tools (run: /usr/bin/python3 -m unittest discover -s tools/tests -t .)."""
