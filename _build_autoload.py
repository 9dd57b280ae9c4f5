"""Build step (pyproject.toml ``[tool.setuptools.cmdclass]``): ship ``idlora_autoload.pth`` at site-packages' root.

A ``.pth`` file must sit directly in site-packages, outside any package, and setuptools has no setting that puts
one there, so ``build_py`` writes it:

* a wheel (``pip install .``, ``pip wheel``, ``python -m build``): into ``build_lib``'s root, which becomes the
  wheel's root, which pip unpacks into site-packages;
* an editable install (``pip install -e .``, what ``make install`` does): setuptools' ``editable_wheel`` packs its
  wheel from the directory it gives ``install`` as ``install_lib`` (``build_lib`` is thrown away there), so it goes
  there, next to setuptools' own ``__editable__.*.pth``.

tests/test_autoload.py builds both kinds and checks the file is in each.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools.command.build_py import build_py

PTH_NAME = "idlora_autoload.pth"
PTH_SOURCE = Path(__file__).resolve().parent / PTH_NAME


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.mkpath(self._pth_dir())
        self.copy_file(str(PTH_SOURCE), os.path.join(self._pth_dir(), PTH_NAME))

    def _pth_dir(self) -> str:
        if getattr(self, "editable_mode", False):
            install_lib = getattr(self.get_finalized_command("install"), "install_lib", None)
            if not install_lib:
                raise RuntimeError(f"editable install: setuptools gave `install` no install_lib, so {PTH_NAME} "
                                   "has nowhere to go; pin setuptools to a version tests/test_autoload.py passes with")
            return install_lib
        return self.build_lib

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PTH_NAME))
        return outputs
