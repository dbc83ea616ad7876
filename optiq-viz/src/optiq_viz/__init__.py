"""optiq-viz: look at motion. Interactive Plotly skeletons, plots of errors and joint angles, MP4 videos.

The public functions are imported lazily, so ``import optiq_viz`` does not import plotly.
"""
