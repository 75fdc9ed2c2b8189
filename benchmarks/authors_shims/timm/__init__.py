"""Stand-in for the parts of timm the authors' PyTorch files import (see ../README.md)."""
