"""Model fixtures (a tiny trained model folder); filled in by the training work."""
