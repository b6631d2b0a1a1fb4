"""Only here for cffi: setuptools' cffi_modules (the host benchmarks, native._hostbench)
has no pyproject.toml key. Everything else about the package is in pyproject.toml.

The extension is optional: without a C compiler or the Python headers the install still
succeeds (with a warning) and only `mksim host-bench` is unavailable; it says how to build
it. Set MKSIM_REQUIRE_NATIVE=1 to make a failed build fail the install.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the host benchmarks cannot compile."""

    def build_extensions(self):
        """Build each extension; drop the ones that fail, so no later step copies them."""
        built = []
        for ext in self.extensions:
            try:
                self.build_extension(ext)
                built.append(ext)
            except BUILD_ERRORS as e:
                if os.environ.get("MKSIM_REQUIRE_NATIVE") == "1":
                    raise
                sys.stderr.write(
                    f"WARNING: the host benchmarks ({ext.name}) were not built: {e}\n"
                    "WARNING: mksim works without them except `mksim host-bench`; install gcc "
                    "and the Python headers (Debian/Ubuntu: apt-get install gcc python3-dev) "
                    "and reinstall to build them.\n")
        self.extensions = built


setup(cffi_modules=["native/build_hostbench.py:ffibuilder"],
      cmdclass={"build_ext": OptionalBuildExt})
