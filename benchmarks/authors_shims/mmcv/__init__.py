"""Stand-in for the parts of mmcv the authors' TransXNet file imports (see ../README.md)."""
