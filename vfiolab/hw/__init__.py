"""Device models: the C engines (vfiolab/csrc) with their Python faces, headless."""
