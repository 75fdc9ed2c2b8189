"""Small datasets shipped as code (generated deterministically, no download)."""
