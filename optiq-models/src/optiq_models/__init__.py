"""optiq-models: next-state motion models (MLP, Transformer, temporal U-Net) conditioned on labels, their
checkpoints and export. Importing the package imports nothing heavy; torch is imported by the modules that use it
(``optiq_models.nets``, ``optiq_models.checkpoint``)."""

__version__ = "0.1.0"
