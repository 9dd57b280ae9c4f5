"""Registers the ``idlora`` package's PEFT methods in any process that imports PEFT, with no ``import idlora``.

PEFT finds a saved adapter's method by its ``"peft_type"`` (``adapter_config.json``); this package's methods
(``IDLORA``, ``HYDRALORA``, ``MOELORA``, ``LORI``) live outside PEFT and are known to it only once ``idlora`` is
imported. Without this module, a fresh process (a user's script, ``python -m lm_eval``) fails inside PEFT with a
bare ``KeyError: 'IDLORA'``.

Installing ``idlora`` (a wheel, or ``pip install -e .``) puts ``idlora_autoload.pth`` in site-packages; at
interpreter start its one line calls :func:`install`, which only puts a finder first on ``sys.meta_path`` (this
module imports nothing beyond ``sys``/``os``: no torch, no PEFT, about a millisecond). When the process imports
``peft``, the finder lets PEFT finish importing, takes itself off ``sys.meta_path`` and imports ``idlora``,
which registers the four methods; ``PeftModel.from_pretrained`` and everything built on it then load them.

``IDLORA_NO_AUTOLOAD=1`` keeps ``idlora`` from being imported automatically; loading one of its adapters then fails
with :class:`AdapterTypeNotLoaded`, a ``KeyError`` whose message says to ``import idlora``. The same message
(with the reason) comes when the automatic import fails, after one warning. Nothing here raises at start-up.
Standard library only.
"""

import os
import sys

# The values of idlora.tuners._registry.ExtraPeftType (tests/test_autoload.py keeps the two lists equal).
PEFT_TYPES = ("IDLORA", "HYDRALORA", "MOELORA", "LORI")
OPT_OUT = "IDLORA_NO_AUTOLOAD"


class AdapterTypeNotLoaded(KeyError):
    """A saved adapter's ``peft_type`` is one of this package's methods and ``idlora`` was not imported."""

    def __str__(self) -> str:  # KeyError prints the repr of its argument; this one is a sentence
        return str(self.args[0]) if self.args else ""


def opted_out() -> bool:
    return os.environ.get(OPT_OUT, "").strip().lower() not in ("", "0", "false", "no")


class _PeftFinder:
    """First on ``sys.meta_path`` until ``peft`` is imported: finds nothing itself, but gives the loader that the
    other finders return for ``peft`` an ``exec_module`` that runs :func:`_peft_imported` once PEFT is loaded."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "peft":
            return None
        try:
            return self._wrapped_spec(fullname, path, target)
        except Exception:  # never break `import peft`: PEFT then imports as if this module were not there
            return None

    def _wrapped_spec(self, fullname, path, target):
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return None
        exec_peft = loader.exec_module

        def exec_module(module):
            uninstall()
            exec_peft(module)
            _peft_imported()

        loader.exec_module = exec_module  # this loader instance only: it loads `peft` and nothing else
        return spec


def install() -> None:
    """Called by ``idlora_autoload.pth`` at interpreter start; idempotent; never raises."""
    try:
        if "peft" in sys.modules:
            _peft_imported()
        elif not any(isinstance(finder, _PeftFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _PeftFinder())
    except Exception:
        pass


def uninstall() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _PeftFinder)]


def _peft_imported() -> None:
    """PEFT has just been imported: register this package's methods, or say how to."""
    try:
        if opted_out():
            _stand_ins(f"{OPT_OUT} is set, so it was not imported automatically")
        elif "idlora" not in sys.modules:  # when it is, it is being imported or was: it registers them itself
            _import_idlora()
    except Exception:
        pass


def _import_idlora() -> None:
    try:
        _load_idlora()
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

        missing = [peft_type for peft_type in PEFT_TYPES if peft_type not in PEFT_TYPE_TO_CONFIG_MAPPING]
        if missing:
            found = getattr(sys.modules.get("idlora"), "__path__", None)
            raise ImportError(f"the idlora imported (from {found}) registered no {', '.join(missing)}")
    except Exception as exc:
        reason = f"importing it automatically failed: {type(exc).__name__}: {exc}"
        import warnings

        warnings.warn(f"idlora_autoload: could not register idlora's PEFT methods ({reason}). `import idlora` shows "
                      f"the full error; {OPT_OUT}=1 turns the automatic import off.", RuntimeWarning, stacklevel=2)
        _stand_ins(reason)


def _load_idlora() -> None:
    """``import idlora``, or, where that would import a folder named ``idlora`` without ``__init__.py`` (a saved
    adapter, say) in the working directory as a namespace package (an editable install's finder comes after the
    working directory), the package proper from the first finder that has it."""
    import importlib.util

    spec = importlib.util.find_spec("idlora")
    if spec is None or spec.origin not in (None, "namespace"):
        import idlora  # noqa: F401  (registers IDLORA, HYDRALORA, MOELORA and LORI with PEFT; or its ImportError)
        return
    for finder in list(sys.meta_path):
        spec = finder.find_spec("idlora", None) if hasattr(finder, "find_spec") else None
        if spec is not None and spec.loader is not None and spec.origin not in (None, "namespace"):
            break
    else:
        raise ImportError(f"only a folder named idlora without __init__.py was found, not the package: "
                          f"{list(importlib.util.find_spec('idlora').submodule_search_locations or [])}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["idlora"] = module
    try:
        spec.loader.exec_module(module)  # registers IDLORA, HYDRALORA, MOELORA and LORI with PEFT
    except BaseException:
        sys.modules.pop("idlora", None)
        raise


def _stand_ins(reason: str) -> None:
    """Put, for each of this package's types PEFT does not know yet, a stand-in config class that raises
    :class:`AdapterTypeNotLoaded` when PEFT uses it; ``idlora``'s registration replaces them."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    for peft_type in PEFT_TYPES:
        if peft_type not in PEFT_TYPE_TO_CONFIG_MAPPING:
            PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = _stand_in(peft_type, reason)


def not_loaded_message(peft_type: str, reason: str) -> str:
    return (f"This adapter's peft_type {peft_type!r} is a method of the idlora package, which PEFT knows only once "
            f"it is imported: `import idlora` before loading it ({reason}). From the shell: `python -m idlora.lm_eval "
            f"...` instead of `python -m lm_eval ...`.")


class _StandInMeta(type):
    """What PEFT does with a config class (call it, ``from_pretrained``, ``from_peft_type``...) raises the message."""

    def __call__(cls, *args, **kwargs):
        raise AdapterTypeNotLoaded(not_loaded_message(cls.peft_type, cls.reason))

    def __getattr__(cls, name):  # public names only: a probe such as hasattr(cls, "_x") still gets False
        if name.startswith("_"):
            raise AttributeError(name)
        raise AdapterTypeNotLoaded(not_loaded_message(cls.peft_type, cls.reason))


def _stand_in(peft_type: str, reason: str) -> type:
    return _StandInMeta(f"{peft_type}NotLoaded", (), {"peft_type": peft_type, "reason": reason,
                                                      "idlora_stand_in": True, "__module__": __name__})
