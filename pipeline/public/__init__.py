"""The public side of the radar: the published collection's templates and the submission app (`radar public`)."""
