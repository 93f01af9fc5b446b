"""What is done with Responses once they exist: DataFrames, token heat maps, plots, sweeps, history and usage.

Imports only the spine (``core``); pandas and matplotlib are imported here, lazily, never by the spine.
"""
