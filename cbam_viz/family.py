"""``python -m cbam_viz.family``: the command line of :mod:`cbam_viz.training.family`."""

from .training.family import main

if __name__ == "__main__":
    raise SystemExit(main())
