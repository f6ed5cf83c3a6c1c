"""``python -m cbam_viz.train``: the command line of :mod:`cbam_viz.training.train`."""

from .training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
