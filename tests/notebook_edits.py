"""Writing edited notebooks, for tests that need a student's version."""

import nbformat


def write(notebook, path):
    nbformat.write(notebook, path)
    return path
