"""Built-in motion file loaders and writers. Each module exposes ``load_x(path, **options) -> list[Clip]``."""
