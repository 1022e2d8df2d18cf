"""The HicgenError family: errors a user can fix, shown by the CLI as one line with exit code 2."""


class HicgenError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class InputError(HicgenError):
    """A command-line value or an input file is not usable."""


class OutputExistsError(HicgenError):
    """The output path exists and --overwrite was not given."""


class MissingDependencyError(HicgenError):
    """An optional dependency is not installed; the message names the extra to install."""


class CheckpointError(HicgenError):
    """A checkpoint is missing, corrupted or does not match the code."""


def require(module: str, extra: str):
    """Import an optional dependency or raise MissingDependencyError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"the optional package '{module.split('.')[0]}' is not installed or does not import; "
            f"install it with: pip install 'hicgen[{extra}]'"
        ) from None
