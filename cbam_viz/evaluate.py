"""``python -m cbam_viz.evaluate``: the command line of :mod:`cbam_viz.training.evaluate`."""

from .training.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
