"""Test support code shared by the suite, importable as ``support`` (pytest pythonpath)."""
