"""Only here for cffi: setuptools' cffi_modules (the host benchmarks, native._hostbench)
has no pyproject.toml key. Everything else about the package is in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["native/build_hostbench.py:ffibuilder"])
