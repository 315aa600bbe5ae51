"""scalebook: a reproducible research report on language-model scaling and SFT evaluation.

The package holds all logic behind the report's chapters: fitting and statistics
(`scaling`, `takeoff`, `size_regression`, `trajectories`, `judges`), data loading and
validation (`tables`, `datasets`), figures (`figures`), the notebook-side run API
(`report`) and the execution pipeline (`params`, `execute`, `book`, `cli`).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scalebook")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
