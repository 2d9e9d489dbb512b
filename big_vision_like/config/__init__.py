"""A run's config: read from a file and the shell (`cli`), checked before anything
is opened or compiled (`validate`)."""
