"""Partner apps: each is a package shaped like a feature, listed in `berater.FEATURES`."""
