"""Example optiq plugin. Importing the package imports nothing else: discovery loads only ``plugin.py``."""
